import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import {
  type CredentialRecord,
  credentialKey,
  decodeCredential,
  decodeSession,
  sessionKey,
} from '../../src/credentials/records.js';
import { DEV_USERS, type DevUser } from '../../src/server/dev/index.js';
import {
  BIN,
  type CliResult,
  runCli,
  type SpawnedCli,
  spawnCli,
  type TestHome,
  testHome,
} from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';
import { passwordOnlySession } from '../support/password-session.js';

/**
 * End-to-end fixtures for issue #4: the real `jitctl server --dev` as its own process (the
 * built-in identity provider, a policy file), people with their own homes and file credential
 * stores, signing in through the provider's pages (test/support/dev-browser.ts), and the real
 * `jitctl` binary for every command.
 */

/**
 * The e2e policy: the demo's prod-deploy (reason, fresh MFA to request and to review), roles
 * without step-up for the other stories (with `review_step_up: none`, so a session's age never
 * matters to them), one approved at once, and one whose pending requests lapse after 3 s.
 */
export const E2E_POLICY = `
# The stories file many requests per person; the per-person cap has its own tests (e2e/lifecycle).
max_pending: 50
roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}" }
  staging-admin:
    description: Administer the staging cluster
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 1h
    max_duration: 4h
    pending_ttl: 2h
    require_reason: true
    credential:
      audience: https://k8s.staging.example.com
      env: { KUBE_TOKEN: "{{token}}" }
  db-read:
    description: Read-only database access, approved at once
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    default_duration: 30m
    max_duration: 2h
    credential:
      audience: https://db.example.com
      env: { PGPASSWORD: "{{token}}" }
  quick-expiry:
    description: Lapses unless reviewed within 3 seconds
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 5m
    max_duration: 10m
    pending_ttl: 3s
    credential:
      audience: https://quick.example.com
`;

export const person = (name: string): DevUser => {
  const u = DEV_USERS.find((x) => x.username === name);
  if (!u) throw new Error(`no dev user ${name}`);
  return u;
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface DevBroker {
  url: string;
  port: number;
  dataDir: string;
  process: SpawnedCli;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** SIGTERM (graceful) or SIGKILL (a crash). */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
  /** Stops it if running and removes its files. */
  cleanup(): Promise<void>;
}

export async function startDevBroker(
  opts: { policy?: string; env?: Record<string, string> } = {},
): Promise<DevBroker> {
  const dataDir = mkdtempSync(join(tmpdir(), 'jitctl-e2e-broker-'));
  const policyFile = join(dataDir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy ?? E2E_POLICY);
  const home = testHome();
  const port = await freePort();
  const self: DevBroker = {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    process: undefined as unknown as SpawnedCli,
    async start() {
      self.process = spawnCli(
        [
          'server',
          '--dev',
          '--listen',
          `127.0.0.1:${port}`,
          '--data-dir',
          join(dataDir, 'data'),
          '--policy',
          policyFile,
        ],
        {
          env: {
            ...home.env,
            JITCTL_DEV_IDP_INTERVAL: '1',
            JITCTL_SERVER_REVIEW_STEP_UP: 'none',
            ...opts.env,
          },
        },
      );
      await self.process.waitForOutput(/jitctl login --server http:\/\/\S+/, 30_000);
    },
    async stop(signal = 'SIGTERM') {
      self.process.child.kill(signal);
      return self.process.done;
    },
    async cleanup() {
      if (self.process && self.process.child.exitCode === null && !self.process.child.killed) {
        await self.stop('SIGKILL');
      }
      home.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await self.start();
  return self;
}

/** One person at one machine: a home with the encrypted file store, signed in to the broker. */
export interface User {
  name: string;
  who: DevUser;
  home: TestHome;
  env: Record<string, string>;
  run(args: string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
  spawn(args: string[]): SpawnedCli;
  /** stdout and stderr of every command this person ran (a spawned one once it ended). */
  outputs: string[];
  /** The credential this person's store holds for `role`, if any. */
  credential(role: string): Promise<CredentialRecord | undefined>;
  /** Every secret this person's store holds (session tokens, credentials), to scan output for. */
  secrets(): Promise<string[]>;
}

export function user(name: string, broker: DevBroker): User {
  const who = person(name);
  const home = testHome({
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: `${name}'s passphrase for the e2e tests`,
  });
  const env = { ...home.env, JITCTL_SERVER: broker.url };
  const store = () => openStore(createContext({ io: testIO(), env }), 'file');
  const outputs: string[] = [];
  const keep = (r: CliResult) => {
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  return {
    name,
    who,
    home,
    env,
    outputs,
    run: async (args, opts = {}) =>
      keep(await runCli(args, { env, timeoutMs: opts.timeoutMs ?? 60_000 })),
    spawn: (args) => {
      const cli = spawnCli(args, { env });
      void cli.done.then(keep);
      return cli;
    },
    async credential(role) {
      return decodeCredential(await (await store()).get(credentialKey(broker.url, role)));
    },
    async secrets() {
      const s = await store();
      const out: string[] = [];
      const session = decodeSession(await s.get(sessionKey(broker.url)));
      if (session) {
        out.push(session.bearer.reveal());
        if (session.refreshToken) out.push(session.refreshToken.reveal());
      }
      for (const key of await s.list(`${broker.url}|credential|`)) {
        const c = decodeCredential(await s.get(key));
        if (c) out.push(c.token.reveal(), ...Object.values(c.env).map((v) => v.reveal()));
      }
      return out;
    },
  };
}

/**
 * `jitctl login` as this person, completing the provider's pages with the one-time code. Without
 * `mfa`, a session signed in with a password only (test/support/password-session.ts): `jitctl
 * login` asks for the level the demo policy's roles need, so a password-only session is what a
 * person has when the identity provider did not honour that, and what step-up tests start from.
 */
export async function signIn(u: User, broker: DevBroker, mfa: boolean): Promise<void> {
  if (!mfa) {
    await passwordOnlySession(u.env, broker.url, u.who);
    return;
  }
  const cli = u.spawn(['login', '--server', broker.url]);
  await cli.waitForOutput(/user_code=/, 30_000);
  await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, u.who, { mfa });
  const r = await cli.done;
  expect(r.code, r.stderr).toBe(0);
}

/**
 * Plays the person through every step-up sign-in `cli` asks for (RFC 9470 challenges answered
 * by a device sign-in with the one-time code) until `until` shows up in its output.
 */
export async function throughStepUps(cli: SpawnedCli, u: User, until: RegExp): Promise<void> {
  const handled = new Set<string>();
  const deadline = Date.now() + 60_000;
  let exited = false;
  void cli.done.then(() => {
    exited = true;
  });
  for (;;) {
    const text = cli.stdout() + cli.stderr();
    if (until.test(text)) return;
    const next = [...text.matchAll(/https?:\/\/\S+[?&]user_code=[A-Za-z0-9-]+/g)]
      .map((m) => m[0])
      .find((x) => !handled.has(x));
    if (next) {
      handled.add(next);
      await completeDeviceLogin(next, u.who, { mfa: true });
      continue;
    }
    if (exited || Date.now() > deadline) {
      throw new Error(
        `no ${until} from jitctl; stdout:\n${cli.stdout()}\nstderr:\n${cli.stderr()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The request id a waiting `jitctl request` printed. */
export async function waitingId(cli: SpawnedCli, u?: User): Promise<string> {
  const pattern = /waiting for approval of (req_[A-Za-z0-9]+)/;
  if (u) await throughStepUps(cli, u, pattern);
  else await cli.waitForOutput(pattern, 30_000);
  return pattern.exec(cli.stderr())![1]!;
}

/** A terminal escape sequence has no business in jitctl's output: ESC, BEL, CSI, bidi overrides. */
export function expectNoRawControls(text: string): void {
  expect(text).not.toMatch(/[\u001b\u0007\u009b\u202e\u2066]/);
}

/** util-linux `script`, which runs a command on a pseudo-terminal of its own. */
export const SCRIPT = '/usr/bin/script';

export interface Pty {
  child: ChildProcess;
  /** Everything the terminal showed so far, escape sequences included. */
  screen(): string;
  /** Types at the terminal (`\r` is Enter, `\u0003` is Ctrl-C). */
  type(text: string): void;
  until(pattern: RegExp, ms?: number): Promise<void>;
  done: Promise<number | null>;
}

/**
 * `jitctl args…` on a 120-column pseudo-terminal under `script`, with `env` but colours allowed
 * (the test homes set NO_COLOR), so ora spins, prompts ask, and ^C typed is SIGINT.
 */
export function atPty(env: Record<string, string>, args: string[]): Pty {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols 120 rows 40; exec ${quote(process.execPath)} ${quote(BIN)} ${args.map(quote).join(' ')}`;
  const { NO_COLOR: _, ...rest } = env;
  const child = spawn(SCRIPT, ['-qec', command, '/dev/null'], {
    env: { ...rest, TERM: 'xterm-256color' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => {
    text += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    screen: () => text,
    type: (s) => void child.stdin!.write(s),
    done,
    async until(pattern, ms = 30_000) {
      const deadline = Date.now() + ms;
      while (!pattern.test(text)) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`no ${pattern} on the terminal:\n${text.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
