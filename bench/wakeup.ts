/**
 * Wake-up latency (issue #6, item 2): the time from the approval's HTTP response to the waiting
 * `jitctl request` process having stored the credential. What a waiting engineer feels between
 * a lead's click and their terminal saying "approved".
 *
 *   npx tsx bench/wakeup.ts [--runs 50] [--store file|keychain] [--json]
 *
 * Real processes on 127.0.0.1: `jitctl server --dev` (SQLite on disk, its identity provider),
 * alice's `jitctl request` (the built binary, the encrypted file store, as `npm run demo`), and
 * lee's approval sent by this script over HTTP with lee's session token, so that the clock starts
 * when the broker's answer arrives. Each run files a request, waits until the broker reports the
 * long poll in place (`jitctl_long_polls_waiting` on /metrics), approves, and stops the clock when
 * alice's process prints its "✔ approved" line, which it does right after the store write
 * returned. That includes: the broker waking the long poll, the answer reaching the CLI, its
 * `POST /credential` (signing the JWT, the audit append), and the store's write: with `--store
 * file` (the default here, as in the tour) a PBES2 derivation, AES-GCM, an fsync'd temporary file
 * and a rename; with `--store keychain` (jitctl's default store) a Secret Service call to a
 * private gnome-keyring on a private D-Bus session.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { BIN, ensureBuilt } from '../scripts/ensure-built.js';
import { createContext } from '../src/cli/context.js';
import { testIO } from '../src/cli/io.js';
import { openStore } from '../src/credentials/index.js';
import {
  credentialKey,
  decodeCredential,
  decodeSession,
  sessionKey,
} from '../src/credentials/records.js';
import { DEV_USERS } from '../src/server/dev/index.js';
import { completeDeviceLogin, deviceLoginUrl } from '../test/support/dev-browser.js';
import { type PrivateKeyring, startKeyring } from '../test/support/keyring.js';

const POLICY = `
roles:
  bench:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    credential:
      audience: https://bench.example.com
      env: { BENCH_TOKEN: "{{token}}" }
`;

interface Proc {
  child: ChildProcess;
  output(): string;
  /** Resolves with the match and when (performance.now()) the output that completed it arrived. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray & { at: number }>;
  done: Promise<{ code: number | null; output: string }>;
}

function start(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let closed = false;
  const waiters = new Set<() => void>();
  const onData = (c: Buffer) => {
    text += c.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const done = new Promise<{ code: number | null; output: string }>((resolve) => {
    child.on('close', (code) => {
      closed = true;
      for (const w of waiters) w();
      resolve({ code, output: text });
    });
  });
  return {
    child,
    output: () => text,
    done,
    waitFor(pattern) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${pattern} in 30 s:\n${text}`)),
          30_000,
        );
        const check = () => {
          const m = pattern.exec(text);
          if (m) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(Object.assign(m, { at: performance.now() }));
          } else if (closed) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`jitctl ${args[0]} ended before ${pattern}:\n${text}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} needs a positive whole number`);
  return n;
}

/** Nearest-rank percentile: with 50 runs, p99 is the slowest run. */
function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

interface Home {
  name: string;
  env: Record<string, string>;
}

function home(root: string, name: string, url: string): Home {
  const dir = join(root, name);
  return {
    name,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_DATA_HOME: join(dir, 'data'),
      XDG_STATE_HOME: join(dir, 'state'),
      LANG: 'C.UTF-8',
      NO_COLOR: '1',
      BROWSER: 'none',
      JITCTL_SERVER: url,
      JITCTL_STORE: 'file',
      JITCTL_FILE_PASSPHRASE: randomBytes(18).toString('base64url'),
    },
  };
}

async function login(h: Home, url: string): Promise<void> {
  const who = DEV_USERS.find((u) => u.username === h.name)!;
  const cli = start(['login', '--server', url], h.env);
  await cli.waitFor(/user_code=/);
  await completeDeviceLogin(deviceLoginUrl(cli.output())!, who, { mfa: true });
  const r = await cli.done;
  if (r.code !== 0) throw new Error(`${h.name}'s login failed:\n${r.output}`);
}

async function longPollsWaiting(url: string): Promise<number> {
  const res = await request(`${url}/metrics`);
  const text = await res.body.text();
  const m = /^jitctl_long_polls_waiting (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function main(): Promise<void> {
  const runs = arg('runs', 50);
  const json = process.argv.includes('--json');
  const storeAt = process.argv.indexOf('--store');
  const storeKind = storeAt === -1 ? 'file' : process.argv[storeAt + 1];
  if (storeKind !== 'file' && storeKind !== 'keychain') {
    throw new Error('--store takes file or keychain');
  }
  ensureBuilt();
  let keyring: PrivateKeyring | undefined;
  const root = mkdtempSync(join(tmpdir(), 'jitctl-wakeup-'));
  const procs: Proc[] = [];
  try {
    writeFileSync(join(root, 'policy.yaml'), POLICY);
    const server = start(
      [
        'server',
        '--dev',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(root, 'broker'),
        '--policy',
        join(root, 'policy.yaml'),
      ],
      {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: root,
        NO_COLOR: '1',
        JITCTL_DEV_IDP_INTERVAL: '1',
        JITCTL_SERVER_REVIEW_STEP_UP: 'none',
      },
    );
    procs.push(server);
    const url = (await server.waitFor(/jitctl login --server (http:\/\/\S+)/))[1]!;
    const alice = home(root, 'alice', url);
    const lee = home(root, 'lee', url);
    if (storeKind === 'keychain') {
      keyring = await startKeyring();
      Object.assign(alice.env, keyring.env, { JITCTL_STORE: 'keychain' });
    }
    await Promise.all([login(alice, url), login(lee, url)]);
    const leeStore = await openStore(createContext({ io: testIO(), env: lee.env }), 'file');
    const leeToken = decodeSession(await leeStore.get(sessionKey(url)))!.bearer;

    const samples: number[] = [];
    let lastId = '';
    for (let i = 0; i < runs + 1; i++) {
      const waiting = start(['request', 'bench', '--for', '10m'], alice.env);
      procs.push(waiting);
      const id = (await waiting.waitFor(/waiting for approval of (req_\w+)/))[1]!;
      while ((await longPollsWaiting(url)) < 1) await new Promise((r) => setTimeout(r, 5));
      const res = await request(`${url}/v1/requests/${id}/reviews`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${leeToken.reveal()}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ decision: 'approve' }),
      });
      const body = await res.body.text();
      const approvedAt = performance.now();
      if (res.statusCode !== 200) throw new Error(`approve answered ${res.statusCode}: ${body}`);
      const storedAt = (await waiting.waitFor(/✔ approved/)).at;
      const r = await waiting.done;
      if (r.code !== 0) throw new Error(`jitctl request exited ${r.code}:\n${r.output}`);
      // The first run warms the broker's caches (JWKS, prepared statements); it is not counted.
      if (i > 0) samples.push(storedAt - approvedAt);
      lastId = id;
    }
    const status = start(['status', '--json'], alice.env);
    const listed = JSON.parse((await status.done).output) as {
      credentials: Array<{ role: string; request_id: string }>;
    };
    if (!listed.credentials.some((c) => c.role === 'bench' && c.request_id === lastId)) {
      throw new Error('the last credential is not in the store');
    }

    const sorted = [...samples].sort((a, b) => a - b);
    const figures = {
      runs: samples.length,
      store: storeKind,
      median_ms: percentile(sorted, 50),
      p90_ms: percentile(sorted, 90),
      p99_ms: percentile(sorted, 99),
      min_ms: sorted[0]!,
      max_ms: sorted.at(-1)!,
      goal: { median_ms: 100, p99_ms: 500 },
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model ?? 'unknown',
        load: loadavg()[0] ?? 0,
      },
      node: process.version,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    } else {
      const f = (n: number) => `${n.toFixed(1)} ms`;
      process.stdout.write(
        [
          `wake-up latency: approve answered → waiting \`jitctl request\` stored the credential`,
          `runs      ${figures.runs} (after 1 warm-up), ${storeKind} store`,
          `median    ${f(figures.median_ms)}   (goal ≤ 100 ms: ${figures.median_ms <= 100 ? 'met' : 'missed'})`,
          `p90       ${f(figures.p90_ms)}`,
          `p99       ${f(figures.p99_ms)}   (goal ≤ 500 ms: ${figures.p99_ms <= 500 ? 'met' : 'missed'})`,
          `min/max   ${f(figures.min_ms)} / ${f(figures.max_ms)}`,
          `machine   ${figures.machine.cpus} × ${figures.machine.model}, load ${figures.machine.load.toFixed(2)}, Node ${process.version}`,
          '',
        ].join('\n'),
      );
    }
    server.child.kill('SIGTERM');
    await server.done;
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await keyring?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
