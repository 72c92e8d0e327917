import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { ExitCode, type JitError } from '../../src/cli/errors.js';
import { testIO } from '../../src/cli/io.js';
import { run as tail } from '../../src/commands/audit-tail.js';
import { openStore } from '../../src/credentials/index.js';
import { atTerminal } from '../e2e/in-process.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import {
  type Dialect,
  rawSql,
  startTestBroker,
  storeSession,
  type TestBroker,
} from '../support/broker.js';
import { spawnCli, testHome } from '../support/cli.js';

/**
 * `jitctl audit tail`: every event once, in order, from a cursor. The real binary follows the log
 * while another process writes 10,000 events and the broker restarts under it; in-process runs
 * check the formats, resuming with --after, a broken chain, and bad input.
 */

vi.setConfig({ testTimeout: 120_000 });

const WRITER = join(import.meta.dirname, 'fixtures', 'audit-writer.ts');

type Line = { seq: number; type: string; prev_hash: string; hash: string };
const parse = (stdout: string): Line[] =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function headSeq(dbUrl: string): Promise<number> {
  return Number(((await rawSql(dbUrl, 'select seq from audit_head')) as { seq: number }[])[0]!.seq);
}

function writer(dbUrl: string, total: number, half: number) {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', WRITER, dbUrl, String(total), String(half)],
    { cwd: join(import.meta.dirname, '..', '..'), env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    child,
    says: (word: string) =>
      vi.waitFor(() => expect(out, err).toContain(`${word}\n`), { timeout: 60_000, interval: 20 }),
    exited,
  };
}

describe.each<Dialect>(['sqlite', 'postgres'])('jitctl audit tail --follow on %s', (dialect) => {
  it('gets each of 10,000 events written by another process once, in order, across a broker restart', async () => {
    const port = await freePort();
    const listen = `127.0.0.1:${port}`;
    const first = await startTestBroker({ policy: POLICY, dialect, settings: { listen } });
    let second: TestBroker | undefined;
    const home = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'tail passphrase' });
    try {
      await file(actor(first, people.alice), { role: 'self-service', reason: 'before the tail' });
      const store = await openStore(createContext({ env: home.env, io: testIO() }), 'file');
      await storeSession(store, first, people.ada);

      const cli = spawnCli(
        ['audit', 'tail', '--follow', '--format', 'jsonl', '--server', first.url],
        {
          env: home.env,
        },
      );
      const printedUpTo = (seq: number) =>
        vi.waitFor(() => expect(parse(cli.stdout()).at(-1)?.seq).toBe(seq), {
          timeout: 60_000,
          interval: 25,
        });
      await printedUpTo(await headSeq(first.dbUrl));

      const w = writer(first.dbUrl, 10_000, 5_000);
      await w.says('half');
      // The broker goes away in the middle of the stream; the writer goes on without it.
      await first.broker.close();
      await cli.waitForOutput('broker unreachable, retrying…', 30_000);
      w.child.stdin!.write('go on\n');
      await w.says('done');
      expect(await w.exited).toBe(0);
      second = await startTestBroker({
        policy: POLICY,
        dbUrl: first.dbUrl,
        issuer: first.issuer,
        clock: first.clock,
        settings: { listen },
      });
      expect(second.url).toBe(first.url);
      await file(actor(second, people.alice), {
        role: 'self-service',
        reason: 'after the restart',
      });
      const head = await headSeq(first.dbUrl);
      await printedUpTo(head);

      cli.child.kill('SIGINT');
      const r = await cli.done;
      expect(r.code).toBe(ExitCode.Interrupted);
      expect(r.stderr).toContain(
        `stopped after event ${head}; resume with: jitctl audit tail --follow --after ${head}`,
      );
      // One outage, said once; a broker that is still closing may answer a last poll first, so
      // the outage can be said again after it. What counts: it ends by saying it is back.
      const said = r.stderr.match(/broker (unreachable, retrying…|reachable again)/g) ?? [];
      expect(said.filter((l) => l.includes('unreachable')).length).toBeGreaterThanOrEqual(1);
      expect(said.filter((l) => l.includes('unreachable')).length).toBeLessThanOrEqual(2);
      expect(said.at(-1)).toBe('broker reachable again');
      expect(r.stderr).toMatch(/broker reachable again; following after event \d+/);

      const lines = parse(r.stdout);
      expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      expect(lines.filter((l) => l.type === 'session.exchanged')).toHaveLength(10_000);
      for (let i = 1; i < lines.length; i++) expect(lines[i]!.prev_hash).toBe(lines[i - 1]!.hash);
    } finally {
      await second?.broker.close();
      await first.close();
      home.cleanup();
    }
  });
});

describe('jitctl audit tail (in-process)', () => {
  let b: TestBroker;
  let reqId: string;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY });
    const req = await file(actor(b, people.alice), {
      role: 'prod-deploy',
      reason: 'evil \u001b[2J\u202e reason',
    });
    reqId = req.id;
    await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
  });
  afterAll(async () => b?.close());

  it('prints the log as text, other people’s text made safe, and exits at its end', async () => {
    const t = await atTerminal(b, people.ada, { tty: false });
    expect(await tail({}, t.ctx)).toBe(0);
    const out = t.io.stdoutText();
    expect(out).toMatch(
      new RegExp(`^1  \\S+Z  request\\.created  ${reqId}  Alice  .*role=prod-deploy`),
    );
    expect(out).toContain('reason=evil \\x1b[2J\\u202e reason');
    expect(out).not.toContain('\u001b');
    expect(out.trimEnd().split('\n')).toHaveLength(3);
    t.home.cleanup();
  });

  it('jsonl: one event per line with seq, prev_hash and hash; --after resumes', async () => {
    const t = await atTerminal(b, people.ada, { tty: false });
    expect(await tail({ format: 'jsonl', after: '1' }, t.ctx)).toBe(0);
    const lines = t.io.stdoutText().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const events = lines.map((l) => JSON.parse(l) as Line & Record<string, unknown>);
    expect(events.map((e) => e.seq)).toEqual([2, 3]);
    expect(events[1]!.prev_hash).toBe(events[0]!.hash);
    expect(lines[0]).not.toMatch(/[\u2028\u2029\u202e]/);
    t.home.cleanup();
  });

  it('ocsf: each event in its class, with the request’s role and requester', async () => {
    const t = await atTerminal(b, people.ada, { tty: false });
    expect(await tail({ format: 'ocsf', after: '1' }, t.ctx)).toBe(0);
    const [review, approved] = t.io
      .stdoutText()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(review).toMatchObject({ class_uid: 3004, activity_id: 3, entity: { uid: reqId } });
    expect(approved).toMatchObject({
      class_uid: 3005,
      activity_id: 1,
      user: { uid: 'alice-sub', name: 'Alice' },
      privileges: ['prod-deploy'],
      actor: { user: { uid: 'lee-sub' } },
      metadata: { sequence: 3, product: { name: 'jitctl', url_string: b.url } },
    });
    t.home.cleanup();
  });

  it('stops with exit 1 at an event that does not chain, after printing those before it', async () => {
    const [row] = (await rawSql(b.dbUrl, 'select data from audit_events where seq = 2')) as {
      data: string;
    }[];
    await rawSql(b.dbUrl, `update audit_events set data = '{"decision":"deny"}' where seq = 2`);
    try {
      const t = await atTerminal(b, people.ada, { tty: false });
      const err = (await tail({ format: 'jsonl' }, t.ctx).catch((e: unknown) => e)) as JitError;
      expect(err.exitCode).toBe(1);
      expect(err.message).toMatch(/the audit log is broken at event 2: hash does not match/);
      expect(t.io.stdoutText().trimEnd().split('\n')).toHaveLength(1);
      t.home.cleanup();
    } finally {
      await rawSql(b.dbUrl, `update audit_events set data = '${row!.data}' where seq = 2`);
    }
  });

  it('refuses bad input (exit 2) and people outside the auditors (exit 3)', async () => {
    const t = await atTerminal(b, people.ada, { tty: false });
    for (const o of [{ format: 'xml' }, { after: '-1' }, { after: 'last' }]) {
      const err = (await tail(o, t.ctx).catch((e: unknown) => e)) as JitError;
      expect(err.exitCode, JSON.stringify(o)).toBe(ExitCode.Usage);
    }
    const alice = await atTerminal(b, people.alice, { tty: false });
    const denied = (await tail({}, alice.ctx).catch((e: unknown) => e)) as JitError;
    expect(denied.exitCode).toBe(3);
    expect(denied.message).toContain('only auditors may read the audit log');
    t.home.cleanup();
    alice.home.cleanup();
  });
});
