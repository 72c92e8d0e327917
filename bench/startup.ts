/**
 * Start-up (issues 6 and 17, section 1): how long `jitctl` takes to start and finish against a
 * bare `node -e 0`, in the same loop so that load on the machine hits both alike.
 *
 *   npx tsx bench/startup.ts [--runs 30] [--bin PATH] [--profile DIR] [--callgrind DIR] [--json]
 *
 * Each round runs every command once (the order rotates from round to round so none always goes
 * first after a pause): `node -e 0`, `jitctl --version`, `jitctl --help`, `jitctl status --json`
 * (a stored session), `jitctl exec bench -- true` and `jitctl credential bench --kube` (a stored
 * credential of a real grant, confirmed with a real broker on every run, as kubectl's exec plugin
 * does on every kubectl command), all reading the encrypted file store with its real PBES2 count,
 * once with the passphrase (one key derivation per run) and once with the unlock agent holding
 * the key. A floor row runs bare node loading only the built-in modules those commands need.
 *
 * `--bin PATH` runs another build's bin/jitctl.js (run the old and the new build alternately to
 * compare a change). `--profile DIR` writes five `--cpu-prof` profiles (100 µs interval) of each
 * jitctl command into DIR/<command>/ after the timed rounds. `--callgrind DIR` runs each hot
 * command (status, exec, credential) three more times under `valgrind --tool=callgrind` and
 * reports its instruction count, which the load on a shared machine does not move (slow: minutes). Wall time is measured around each
 * process; CPU time (user + system of the child, from the kernel's accounting of reaped children) is
 * summed per command, so the CPU ratio is a mean and immune to waiting for a busy core.
 *
 * The children run without NODE_EXTRA_CA_CERTS or NODE_OPTIONS: a machine-wide
 * NODE_EXTRA_CA_CERTS (set on the development machines) makes every Node process parse a CA
 * bundle at start, about 130 ms, which would inflate bare node and flatter every ratio. Users'
 * shells normally have neither.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeJwt } from 'jose';
import { BIN as BUILT_BIN, ensureBuilt } from '../scripts/ensure-built.js';
import { homeEnv } from '../scripts/home-env.js';
import type { CredentialResponse } from '../src/api/schemas.js';
import { Secret } from '../src/api/secret.js';
import { FILE_STORE_P2C, fileStore } from '../src/credentials/file-store.js';
import {
  credentialKey,
  credentialRecordOf,
  encodeCredential,
  encodeSession,
  sessionKey,
} from '../src/credentials/records.js';
import { hasFlag, intFlag, valueFlag } from './support/args.js';
import { type BenchBroker, brokerHarness } from './support/broker.js';
import { childrenCpuMs } from './support/process.js';
import {
  checkGoal,
  describeGoals,
  describeMachine,
  type GoalResult,
  humanOut,
  machine,
  progress,
  table,
} from './support/report.js';
import { round, roundSummary, type Summary, summarize } from './support/stats.js';

const PASSPHRASE = 'bench file-store passphrase';

/** `--bin PATH`: another build's bin/jitctl.js (to compare a change). */
const BIN = valueFlag('bin') ?? BUILT_BIN;

interface Case {
  name: string;
  args: string[];
  /** What a successful run prints on stdout (checked on every run). */
  expect?: RegExp;
  /** The child's environment, when not the seeded home's. */
  env?: Record<string, string>;
}

/**
 * A private home with a session and a credential in the file store, both real: the credential
 * of an approved grant on `broker` (its own process), which `exec` and `credential` confirm with
 * the broker on every run (one small request, GET /v1/credential/status). Returns the child env.
 */
async function seedHome(dir: string, broker: BenchBroker): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    ...homeEnv(dir),
    NO_COLOR: '1',
    JITCTL_SERVER: broker.url,
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: PASSPHRASE,
  };
  const store = fileStore({
    dir: join(dir, 'data', 'jitctl', 'store'),
    passphrase: async () => new Secret(PASSPHRASE),
  });
  const now = Date.now();
  await store.set(
    sessionKey(broker.url),
    encodeSession({
      kind: 'oidc',
      issuer: decodeJwt(broker.requester).iss!,
      clientId: 'jitctl-cli',
      bearer: new Secret(broker.requester),
      refreshToken: null,
      expiresAt: now + 3_600_000,
      identity: {
        iss: decodeJwt(broker.requester).iss!,
        sub: 'bench-dev',
        name: 'Bench Developer',
        email: null,
        groups: ['developers'],
      },
      acr: 'mfa',
      authTime: now,
    }),
  );
  const call = async <T>(token: string, path: string, body: unknown): Promise<T> => {
    const r = await fetch(broker.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${path} answered ${r.status}: ${await r.text()}`);
    return (await r.json()) as T;
  };
  const filed = await call<{ id: string }>(broker.requester, '/v1/requests', {
    role: 'bench',
    duration: '1h',
  });
  await call(broker.approver, `/v1/requests/${filed.id}/reviews`, { decision: 'approve' });
  const minted = await call<CredentialResponse>(
    broker.requester,
    `/v1/requests/${filed.id}/credential`,
    {},
  );
  await store.set(
    credentialKey(broker.url, 'bench'),
    encodeCredential(credentialRecordOf('bench', filed.id, minted, Date.now())),
  );
  return env;
}

export interface StartupRow {
  command: string;
  runs: number;
  wall_ms: Summary;
  /** Mean CPU per run (user + system); null where the kernel does not tell. */
  cpu_ms: number | null;
  ratio_p50: number;
  ratio_cpu: number | null;
}

async function main(): Promise<void> {
  const runs = intFlag('runs', 30);
  const json = hasFlag('json');
  const out = humanOut(json);
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-bench-startup-'));
  const harness = await brokerHarness();
  const broker = await harness.start('sqlite');
  try {
    const env = await seedHome(dir, broker);
    const cases: Case[] = [
      { name: 'node -e 0', args: ['-e', '0'] },
      // A floor: bare node loading only the built-in modules that credential and exec need
      // (Node 20 compiles them at first use: they are not in its start-up snapshot).
      {
        name: 'node + crypto, http, child_process, fs/promises',
        args: [
          '-e',
          "require('crypto');require('http');require('child_process');require('fs/promises')",
        ],
      },
      { name: 'jitctl --version', args: [BIN, '--version'], expect: /^\d+\.\d+\.\d+/ },
      { name: 'jitctl --help', args: [BIN, '--help'], expect: /Usage: jitctl/ },
      {
        name: 'jitctl status --json',
        args: [BIN, 'status', '--json'],
        expect: /"signed_in": true/,
      },
      { name: 'jitctl exec bench -- true', args: [BIN, 'exec', 'bench', '--', 'true'] },
      {
        name: 'jitctl credential bench --kube',
        args: [BIN, 'credential', 'bench', '--kube'],
        expect: /"kind": "ExecCredential"/,
      },
    ];
    // kubectl's exec plugin: the file store with its passphrase (one key derivation per run), and
    // with the unlock agent holding the key (no passphrase, no derivation: issue 12).
    const agentEnv: Record<string, string> = { ...env, JITCTL_AGENT_TIMEOUT: '10m' };
    delete agentEnv.JITCTL_FILE_PASSPHRASE;
    cases.push(
      {
        name: 'jitctl status --json (agent)',
        args: [BIN, 'status', '--json'],
        expect: /"signed_in": true/,
        env: agentEnv,
      },
      {
        name: 'jitctl exec bench -- true (agent)',
        args: [BIN, 'exec', 'bench', '--', 'true'],
        env: agentEnv,
      },
      {
        name: 'jitctl credential bench --kube (agent)',
        args: [BIN, 'credential', 'bench', '--kube'],
        expect: /ExecCredential/,
        env: agentEnv,
      },
    );
    // Unlock once with the agent on, so that it holds the key for the agent case.
    spawnSync(process.execPath, [BIN, 'status'], {
      env: { ...env, JITCTL_AGENT_TIMEOUT: '10m' },
      stdio: 'ignore',
    });
    const extraCa = process.env.NODE_EXTRA_CA_CERTS;
    if (extraCa) {
      cases.push({
        name: 'node -e 0 with NODE_EXTRA_CA_CERTS',
        args: ['-e', '0'],
        env: { ...env, NODE_EXTRA_CA_CERTS: extraCa },
      });
    }
    const wall = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    const cpu = new Map<string, number>(cases.map((c) => [c.name, 0]));
    let cpuKnown = childrenCpuMs() !== undefined;

    /** One run of `c`: its wall time, and its CPU time added to `c`'s sum when `counted`. */
    const once = (c: Case, counted: boolean) => {
      const before = childrenCpuMs();
      const t0 = performance.now();
      const r = spawnSync(process.execPath, c.args, {
        env: c.env ?? env,
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
      });
      const ms = performance.now() - t0;
      const after = childrenCpuMs();
      if (r.status !== 0 || (c.expect && !c.expect.test(r.stdout))) {
        throw new Error(
          `${c.name} failed (exit ${r.status}):\n${r.stdout.slice(0, 500)}\n${r.stderr.slice(0, 2000)}`,
        );
      }
      if (before === undefined || after === undefined) cpuKnown = false;
      else if (counted) cpu.set(c.name, cpu.get(c.name)! + (after - before));
      return ms;
    };

    // One warm-up round fills the page cache (the bundle, node_modules' native files); its CPU
    // time is not counted, since the sums are divided by `runs`.
    for (const c of cases) once(c, false);
    progress(`start-up: ${runs} rounds of ${cases.length} commands`);
    for (let round = 0; round < runs; round++) {
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(round + k) % cases.length]!;
        wall.get(c.name)!.push(once(c, true));
      }
    }

    const profileDir = valueFlag('profile');
    if (profileDir) {
      progress(`start-up: one profiled run of each command into ${profileDir}`);
      for (const c of cases.filter((c) => c.args[0] === BIN)) {
        const sub = join(profileDir, slug(c.name));
        const args = ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', sub, ...c.args];
        for (let i = 0; i < 5; i++) once({ ...c, args }, false);
      }
    }
    const callgrindDir = valueFlag('callgrind');
    const instructions = callgrindDir
      ? callgrind(
          callgrindDir,
          cases.filter((c) => c.args[0] === BIN && /status|exec|credential/.test(c.name)),
          (c) => ({ env: c.env ?? env, cwd: dir }),
        )
      : [];
    const base = summarize(wall.get('node -e 0')!);
    const baseCpu = cpu.get('node -e 0')! / runs;
    const rows: StartupRow[] = cases.map((c) => {
      const s = summarize(wall.get(c.name)!);
      const cpuMean = cpu.get(c.name)! / runs;
      return {
        command: c.name,
        runs,
        wall_ms: roundSummary(s),
        cpu_ms: cpuKnown ? round(cpuMean) : null,
        ratio_p50: round(s.p50 / base.p50, 2),
        ratio_cpu: cpuKnown && baseCpu > 0 ? round(cpuMean / baseCpu, 2) : null,
      };
    });
    const rowOf = (name: string) => rows.find((r) => r.command === name)!;
    // Issue 17's goals, each a median wall time over bare node's in the same loop.
    const ratioGoal = (command: string, what: string, limit: number) =>
      checkGoal({
        what: `${what} ÷ \`node -e 0\` (median wall)`,
        value: rowOf(command).ratio_p50,
        limit,
        kind: 'max',
        unit: '×',
      });
    const goals: GoalResult[] = [
      ratioGoal('jitctl --version', '`jitctl --version`', 1.2),
      ratioGoal('jitctl status --json', '`jitctl status --json` (file store, passphrase)', 2.0),
      ratioGoal('jitctl status --json (agent)', '`jitctl status --json` (unlock agent)', 2.0),
      ratioGoal('jitctl exec bench -- true', '`jitctl exec -- true` (file store, passphrase)', 1.8),
      ratioGoal('jitctl exec bench -- true (agent)', '`jitctl exec -- true` (unlock agent)', 1.8),
      ratioGoal(
        'jitctl credential bench --kube',
        '`jitctl credential --kube` (file store, passphrase)',
        1.8,
      ),
      ratioGoal(
        'jitctl credential bench --kube (agent)',
        '`jitctl credential --kube` (unlock agent)',
        1.8,
      ),
    ];
    const m = machine();
    const figures = {
      section: 'startup',
      runs,
      p2c: FILE_STORE_P2C,
      node_extra_ca_certs: extraCa ? 'removed from the children' : 'not set',
      rows,
      ...(callgrindDir ? { instructions } : {}),
      goals,
      machine: m,
    };
    if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    out('1. Start-up: each command against bare `node -e 0`, interleaved in one loop');
    out(
      `   ${runs} runs each after a warm-up; wall time per process; CPU = mean user+system per run.\n` +
        '   Children run without NODE_EXTRA_CA_CERTS/NODE_OPTIONS' +
        (extraCa
          ? ` (this machine sets NODE_EXTRA_CA_CERTS=${extraCa}, which adds a CA-bundle parse to every start and would flatter the ratios; the last row shows it)`
          : '') +
        `.\n   File store with its real PBES2 count (p2c ${FILE_STORE_P2C.toLocaleString('en-US')}).`,
    );
    out(
      table(
        ['command', 'p50 ms', 'p90 ms', 'min ms', 'max ms', 'CPU ms', '× node p50', '× node CPU'],
        rows.map((r) => [
          r.command,
          r.wall_ms.p50,
          r.wall_ms.p90,
          r.wall_ms.min,
          r.wall_ms.max,
          r.cpu_ms ?? Number.NaN,
          r.ratio_p50,
          r.ratio_cpu ?? Number.NaN,
        ]),
      ),
    );
    if (callgrindDir) {
      out(
        '   Instructions per run under callgrind (millions; identical runs differ by up to ±5%):',
      );
      out(
        table(
          ['command', 'mean', 'min', 'max'],
          instructions.map((r) => [r.command, r.mean_m, r.min_m, r.max_m]),
        ),
      );
    }
    out(describeGoals(goals));
    out(`   machine: ${describeMachine(m)}\n`);
  } finally {
    spawnSync(process.execPath, [BIN, 'lock'], {
      env: { ...process.env, ...homeEnv(dir) },
      stdio: 'ignore',
    });
    await broker.stop();
    await harness.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function slug(name: string): string {
  return name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '');
}

/** Three runs of each case under callgrind: instructions per run, in millions. */
function callgrind(
  dir: string,
  cases: Case[],
  where: (c: Case) => { env: Record<string, string>; cwd: string },
): Array<{ command: string; runs: number[]; mean_m: number; min_m: number; max_m: number }> {
  progress(`start-up: three runs of each hot command under callgrind into ${dir} (slow)`);
  mkdirSync(dir, { recursive: true });
  return cases.map((c) => {
    const runs = [0, 1, 2].map((i) => {
      const file = join(dir, `${slug(c.name)}.${i}.callgrind`);
      const r = spawnSync(
        'valgrind',
        // V8 writes code at run time: valgrind must notice it outside the stack too.
        ['--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${file}`].concat(
          process.execPath,
          c.args,
        ),
        { ...where(c), stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
      );
      const summary = r.status === 0 ? /^summary: (\d+)$/m.exec(readFileSync(file, 'utf8')) : null;
      if (!summary) throw new Error(`${c.name} under callgrind failed: ${r.stderr.slice(-1500)}`);
      return Number(summary[1]) / 1e6;
    });
    const mean = runs.reduce((a, b) => a + b, 0) / runs.length;
    return {
      command: c.name,
      runs: runs.map((n) => round(n, 1)),
      mean_m: round(mean, 1),
      min_m: round(Math.min(...runs), 1),
      max_m: round(Math.max(...runs), 1),
    };
  });
}

await main();
