/**
 * Wake-up latency (issue #6, section 2): the time from the approval's HTTP response to the waiting
 * `jitctl request` process having stored the credential. What a waiting engineer feels between
 * a lead's click and their terminal saying "approved".
 *
 *   npx tsx bench/wakeup.ts [--runs 50] [--store file|keychain] [--bin PATH] [--json]
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
 *
 * The broker's own share is measured in the same runs: this script holds a second long poll on
 * the same request (as the lead) and notes when its answer arrives, so each run also says how
 * long the broker took to wake a waiter (the rest is the CLI: its poll's answer, the mint call,
 * the store write). The processes run without NODE_EXTRA_CA_CERTS (bench/support/process.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { BIN as BUILT_BIN, ensureBuilt } from '../scripts/ensure-built.js';
import { homeEnv } from '../scripts/home-env.js';
import { createContext } from '../src/cli/context.js';
import { testIO } from '../src/cli/io.js';
import { openStore } from '../src/credentials/index.js';
import { decodeSession, sessionKey } from '../src/credentials/records.js';
import { DEV_USERS } from '../src/server/dev/index.js';
import { completeDeviceLogin, deviceLoginUrl } from '../test/support/dev-browser.js';
import { type PrivateKeyring, startKeyring } from '../test/support/keyring.js';
import { hasFlag, intFlag, stringFlag, valueFlag } from './support/args.js';
import { BENCH_POLICY } from './support/broker.js';
import {
  checkGoal,
  describeGoals,
  describeMachine,
  humanOut,
  machine,
  progress,
  table,
} from './support/report.js';
import { roundSummary, summarize } from './support/stats.js';

interface Proc {
  child: ChildProcess;
  output(): string;
  /** Resolves with the match and when (performance.now()) the output that completed it arrived. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray & { at: number }>;
  done: Promise<{ code: number | null; output: string }>;
}

/** `--bin PATH`: run another build's bin/jitctl.js (to compare a change). */
const BIN = valueFlag('bin') ?? BUILT_BIN;

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

interface Home {
  name: string;
  env: Record<string, string>;
}

function home(root: string, name: string, url: string): Home {
  const dir = join(root, name);
  return {
    name,
    env: {
      ...homeEnv(dir),
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

/** What a nearest-rank p99 of `n` samples is (bench/support/stats.ts). */
function p99Is(n: number): string {
  const slower = n - Math.ceil((99 / 100) * n);
  return slower === 0
    ? 'p99 is the slowest run'
    : `p99 leaves out the ${slower} slowest run${slower === 1 ? '' : 's'}`;
}

async function main(): Promise<void> {
  const runs = intFlag('runs', 50);
  const json = hasFlag('json');
  const out = humanOut(json);
  const storeKind = stringFlag('store', ['file', 'keychain'], 'file');
  ensureBuilt();
  const m = machine();
  let keyring: PrivateKeyring | undefined;
  const root = mkdtempSync(join(tmpdir(), 'jitctl-wakeup-'));
  const procs: Proc[] = [];
  try {
    writeFileSync(join(root, 'policy.yaml'), BENCH_POLICY);
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
        // alice files and mints 50 times in a minute or two: the per-person write limit (60/min)
        // would measure itself.
        JITCTL_SERVER_RATE_LIMITS: 'off',
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
    const brokerSamples: number[] = [];
    let lastId = '';
    progress(`wake-up: ${runs} runs (and 1 warm-up), ${storeKind} store`);
    for (let i = 0; i < runs + 1; i++) {
      const waiting = start(['request', 'bench', '--for', '10m'], alice.env);
      procs.push(waiting);
      const id = (await waiting.waitFor(/waiting for approval of (req_\w+)/))[1]!;
      while ((await longPollsWaiting(url)) < 1) await new Promise((r) => setTimeout(r, 5));
      // The lead's own long poll on the same request: when the broker answers a waiter.
      const watched = request(`${url}/v1/requests/${id}?wait=60s`, {
        headers: { authorization: `Bearer ${leeToken.reveal()}` },
      }).then(async (r) => {
        const body = (await r.body.json()) as { state: string };
        return { at: performance.now(), state: body.state };
      });
      while ((await longPollsWaiting(url)) < 2) await new Promise((r) => setTimeout(r, 5));
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
      const woke = await watched;
      if (woke.state !== 'approved') throw new Error(`the lead's long poll answered ${woke.state}`);
      const r = await waiting.done;
      if (r.code !== 0) throw new Error(`jitctl request exited ${r.code}:\n${r.output}`);
      // The first run warms the broker's caches (JWKS, prepared statements); it is not counted.
      if (i > 0) {
        samples.push(storedAt - approvedAt);
        brokerSamples.push(Math.max(0, woke.at - approvedAt));
      }
      lastId = id;
    }
    const status = start(['status', '--json'], alice.env);
    const listed = JSON.parse((await status.done).output) as {
      credentials: Array<{ role: string; request_id: string }>;
    };
    if (!listed.credentials.some((c) => c.role === 'bench' && c.request_id === lastId)) {
      throw new Error('the last credential is not in the store');
    }

    const full = summarize(samples);
    const broker = summarize(brokerSamples);
    const stored = roundSummary(full);
    const wake = roundSummary(broker);
    const goals = [
      checkGoal({
        what: 'approve answered → credential stored, median',
        value: full.p50,
        limit: 50,
        kind: 'max',
        unit: ' ms',
      }),
      checkGoal({
        what: 'approve answered → credential stored, p99',
        value: full.p99,
        limit: 200,
        kind: 'max',
        unit: ' ms',
      }),
    ];
    const figures = {
      section: 'wakeup',
      runs: samples.length,
      store: storeKind,
      stored_ms: stored,
      broker_wake_ms: wake,
      goals,
      machine: m,
    };
    if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    out(
      '2. Wake-up latency: approve answered → the waiting `jitctl request` stored the credential',
    );
    out(
      `   ${figures.runs} runs after 1 warm-up; real processes: \`jitctl server --dev\` (SQLite), alice's \`jitctl request\`\n` +
        `   (${storeKind} store), lee's approval over HTTP. "broker wakes a waiter": a second long poll on the same request.\n` +
        `   Nearest-rank percentiles: with ${figures.runs} runs, ${p99Is(figures.runs)}. Latencies in ms.`,
    );
    out(
      table(
        ['from the approval response to', 'runs', 'p50', 'p90', 'p99', 'min', 'max'],
        (
          [
            ['credential stored by jitctl', stored],
            ['broker wakes a waiter', wake],
          ] as const
        ).map(([what, s]) => [what, s.n, s.p50, s.p90, s.p99, s.min, s.max]),
      ),
    );
    out(describeGoals(goals));
    out(`   machine: ${describeMachine(m)}\n`);
    server.child.kill('SIGTERM');
    await server.done;
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await keyring?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
