import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { POLICY, people } from '../server/helpers.js';
import {
  type HttpResult,
  http,
  rawSql,
  startTestBroker,
  type TestBroker,
} from '../support/broker.js';
import { type CliResult, runCli, type SpawnedCli, spawnCli, testHome } from '../support/cli.js';
import { type PostgresCluster, startPostgresCluster } from '../support/postgres.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';

/**
 * The broker against a PostgreSQL that goes away, as operators see it happen: started while the
 * database is down (it waits, saying so every few seconds), then under a steady load of creates,
 * approvals and mints, the broker's backends terminated several times, a PostgreSQL restart and
 * a killed postmaster. Two replicas: `jitctl server` as its own process (the built binary) and an
 * in-process one, whose crash would take the test worker with it. Every call answers (2xx, or
 * 503 with Retry-After in the API's error shape), neither process exits, both serve again within
 * seconds, long polls keep waking across replicas once LISTEN has reconnected, and the audit log
 * verifies afterwards: nothing was half-written.
 */

vi.setConfig({ testTimeout: 180_000 });

const URL_LINE = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

let cluster: PostgresCluster;
let issuer: TestIssuer;
let dir: string;
let policyFile: string;
let dbUrl: string;
const home = testHome();

beforeAll(async () => {
  cluster = await startPostgresCluster();
  await rawSql(cluster.url, 'create database jitctl');
  dbUrl = cluster.url.replace(/\/postgres$/, '/jitctl');
  await cluster.stop();
  issuer = await startTestIssuer();
  dir = mkdtempSync(join(tmpdir(), 'jitctl-pg-outage-'));
  policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
}, 60_000);

afterAll(async () => {
  cluster?.destroy();
  await issuer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  home.cleanup();
});

function server(): SpawnedCli {
  return spawnCli(
    [
      'server',
      '--listen',
      '127.0.0.1:0',
      '--db',
      dbUrl,
      '--policy',
      policyFile,
      '--oidc-issuer',
      issuer.issuer,
      '--oidc-client-id',
      issuer.clientId,
    ],
    // The load here is the point; the abuse limits are tested elsewhere.
    { env: { ...home.env, JITCTL_SERVER_RATE_LIMITS: 'off' }, cwd: dir },
  );
}

/** The JSON log lines (stdout) of a spawned broker with this message. */
function logLines(run: SpawnedCli, msg: string): Record<string, unknown>[] {
  return run
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

async function until(cond: () => boolean | Promise<boolean>, ms = 30_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const ready = async (url: string) => {
  try {
    return (await http(url, 'GET', '/readyz')).status === 200;
  } catch {
    return false;
  }
};

describe('a broker started while PostgreSQL is down', () => {
  it('waits with a log line every few seconds, serves /healthz meanwhile, and stops cleanly on SIGTERM', async () => {
    const run = server();
    await run.waitForOutput(/waiting for the database/, 30_000);
    const [first] = logLines(run, 'waiting for the database');
    expect(first).toMatchObject({ level: 40, db: dbUrl, retry_in_ms: expect.any(Number) });
    expect(String(first!.err)).toMatch(/ECONNREFUSED/);
    const url = String(first!.url);
    // The port is open: alive, not ready, every API call a 503 with Retry-After.
    expect((await http(url, 'GET', '/healthz')).status).toBe(200);
    const notReady = await http(url, 'GET', '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({ error: { code: 'unavailable' } });
    const api = await http(url, 'GET', '/v1/config');
    expect(api.status).toBe(503);
    expect(api.headers['retry-after']).toBeDefined();
    expect(api.body).toMatchObject({ error: { code: 'unavailable' } });
    await until(() => logLines(run, 'waiting for the database').length >= 2, 30_000, 'a retry');
    expect(run.child.exitCode).toBeNull();

    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('listening on');
  });
});

interface Stats {
  ok: number;
  unavailable: number;
  /** Answers that must never happen: 5xx other than 503, a 503 without Retry-After, a reset. */
  bad: string[];
}

function record(stats: Stats, what: string, r: HttpResult | Error): boolean {
  if (r instanceof Error) {
    stats.bad.push(`${what}: ${r.message}`);
    return false;
  }
  if (r.status >= 200 && r.status < 300) {
    stats.ok++;
    return true;
  }
  const err = (r.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (
    r.status === 503 &&
    err?.code === 'unavailable' &&
    typeof err.message === 'string' &&
    r.headers['retry-after'] !== undefined
  ) {
    stats.unavailable++;
    return false;
  }
  stats.bad.push(`${what}: ${r.status} ${r.text}`);
  return false;
}

/** One client looping create → approve → mint against `url` until `stop()` or `max` rounds. */
async function worker(
  url: string,
  tokens: Record<'alice' | 'lee', string>,
  stats: Stats,
  stop: () => boolean,
  max: number,
): Promise<void> {
  const call = (token: string, path: string, body: unknown) =>
    http<AccessRequest>(url, 'POST', path, { token, body }).catch((e: Error) => e);
  for (let i = 0; i < max && !stop(); i++) {
    const created = await call(tokens.alice, '/v1/requests', {
      role: 'prod-deploy',
      reason: `load ${i}`,
    });
    if (!record(stats, 'create', created)) continue;
    const id = (created as HttpResult<AccessRequest>).body.id;
    const approved = await call(tokens.lee, `/v1/requests/${id}/reviews`, { decision: 'approve' });
    if (!record(stats, 'approve', approved)) continue;
    record(stats, 'mint', await call(tokens.alice, `/v1/requests/${id}/credential`, {}));
  }
}

describe('PostgreSQL going away under load', () => {
  let a: SpawnedCli;
  let b: TestBroker | undefined;
  let exited: CliResult | undefined;

  afterAll(async () => {
    if (a && a.child.exitCode === null) {
      a.child.kill('SIGKILL');
      await a.done;
    }
    await b?.close();
  });

  it('keeps both replicas running, recovers within seconds each time, and audit verify is ok', async () => {
    a = server();
    void a.done.then((r) => {
      exited = r;
    });
    await a.waitForOutput(/waiting for the database/, 30_000);
    await cluster.start();
    await a.waitForOutput(URL_LINE, 30_000);
    const urlA = URL_LINE.exec(a.stderr())![1]!;
    b = await startTestBroker({
      policy: POLICY,
      dbUrl,
      issuer,
      settings: { rate_limits: 'off' },
    });
    const urlB = b.url;

    const tokens = {
      alice: await issuer.token(people.alice),
      lee: await issuer.token(people.lee),
    };
    const stats: Stats = { ok: 0, unavailable: 0, bad: [] };
    let stopping = false;
    const load = Promise.all(
      [urlA, urlB, urlA, urlB].map((u) => worker(u, tokens, stats, () => stopping, 400)),
    );
    const progress = (n: number) => {
      const target = stats.ok + n;
      return until(() => stats.ok >= target || stopping, 60_000, `${n} more successful calls`);
    };
    const recovered = async (what: string) => {
      const t0 = Date.now();
      await until(async () => (await ready(urlA)) && (await ready(urlB)), 15_000, what);
      return Date.now() - t0;
    };
    const terminate = () =>
      rawSql(
        cluster.url,
        `select pg_terminate_backend(pid) from pg_stat_activity
          where datname = 'jitctl' and pid <> pg_backend_pid()`,
      );

    const recoveries: number[] = [];
    for (let i = 0; i < 3; i++) {
      await progress(30);
      await terminate();
      recoveries.push(await recovered(`recovery from pg_terminate_backend #${i + 1}`));
    }
    await progress(30);
    await cluster.restart();
    recoveries.push(await recovered('recovery from a PostgreSQL restart'));
    await progress(30);
    const before503 = stats.unavailable;
    await cluster.killPostmaster();
    // Down for real: the load sees 503s (never a reset connection) before PostgreSQL returns.
    await until(() => stats.unavailable > before503, 30_000, 'a 503 while PostgreSQL is down');
    expect((await http(urlA, 'GET', '/healthz')).status).toBe(200);
    expect((await http(urlA, 'GET', '/readyz')).status).toBe(503);
    await cluster.start();
    recoveries.push(await recovered('recovery from a killed postmaster'));
    await progress(30);
    stopping = true;
    await load;

    expect(exited, exited?.stderr).toBeUndefined();
    expect(stats.bad).toEqual([]);
    expect(stats.unavailable).toBeGreaterThan(0);
    expect(stats.ok).toBeGreaterThanOrEqual(180);
    for (const ms of recoveries) expect(ms).toBeLessThan(10_000);

    // LISTEN reconnected on both replicas: a decision on one wakes a long poll on the other.
    const listening = (lines: string) =>
      (lines.match(/change listener reconnected/g) ?? []).length >=
      (lines.match(/change listener lost its PostgreSQL connection/g) ?? []).length;
    await until(() => listening(a.stdout()) && listening(b!.logs()), 30_000, 'LISTEN again');
    for (const [waitOn, decideOn] of [
      [urlA, urlB],
      [urlB, urlA],
    ] as const) {
      const created = await http<AccessRequest>(waitOn, 'POST', '/v1/requests', {
        token: tokens.alice,
        body: { role: 'prod-deploy', reason: 'across replicas' },
      });
      expect(created.status, created.text).toBe(201);
      const t0 = Date.now();
      const waiting = http<AccessRequest>(
        waitOn,
        'GET',
        `/v1/requests/${created.body.id}?wait=50s`,
        { token: tokens.alice },
      );
      const review = await http(decideOn, 'POST', `/v1/requests/${created.body.id}/reviews`, {
        token: tokens.lee,
        body: { decision: 'approve' },
      });
      expect(review.status, review.text).toBe(200);
      const woke = await waiting;
      expect(woke.body.state).toBe('approved');
      expect(Date.now() - t0).toBeLessThan(10_000);
    }

    a.child.kill('SIGTERM');
    const end = await a.done;
    expect(end.code, end.stderr).toBe(0);
    await b.close();
    b = undefined;

    const verify = await runCli(['audit', 'verify', '--db', dbUrl], { env: home.env });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ events, chain intact/);
  });
});
