import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { askAgent } from '../../src/credentials/agent.js';
import { BIN, runCli, testHome } from '../support/cli.js';
import {
  atPty,
  type DevBroker,
  SCRIPT,
  signIn,
  startDevBroker,
  type User,
  user,
} from './support.js';

/**
 * The tools around the commands, with the real binary against `jitctl server --dev`: the unlock
 * agent and `jitctl lock`, `jitctl doctor`, and shell completion (bash and zsh for real, fish
 * where it is installed).
 */

vi.setConfig({ testTimeout: 120_000 });

let broker: DevBroker;
let alice: User;
/** A directory with a `jitctl` on it, as an npm install puts one on PATH. */
let binDir: string;

beforeAll(async () => {
  broker = await startDevBroker();
  alice = user('alice', broker);
  await signIn(alice, broker, true);
  binDir = join(alice.home.dir, 'bin');
  mkdirSync(binDir);
  writeFileSync(
    join(binDir, 'jitctl'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`,
  );
  chmodSync(join(binDir, 'jitctl'), 0o755);
}, 120_000);

afterAll(async () => {
  await runCli(['lock'], { env: alice?.env ?? {} }).catch(() => {});
  await broker?.cleanup();
  alice?.home.cleanup();
});

/** alice's environment without the passphrase (and so nothing to unlock the store with but the agent). */
const withoutPassphrase = (env: Record<string, string>) => {
  const { JITCTL_FILE_PASSPHRASE: _, ...rest } = env;
  return rest;
};
const agentSocket = (u: User) => join(u.home.env.XDG_STATE_HOME!, 'jitctl', 'agent', 'agent.sock');

/** Waits until process `pid` is gone (the agent exiting), up to `ms`. */
async function gone(pid: number, ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!existsSync(`/proc/${pid}`)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('the unlock agent and jitctl lock', () => {
  it('off by default: every command needs the passphrase', async () => {
    const r = await runCli(['status'], { env: withoutPassphrase(alice.env) });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('the encrypted file store needs its passphrase');
    expect(existsSync(agentSocket(alice))).toBe(false);
  });

  it('on: one unlock, then commands need no passphrase; the key is nowhere but in the agent', async () => {
    const env = { ...alice.env, JITCTL_AGENT_TIMEOUT: '5m' };
    const first = await runCli(['status'], { env });
    expect(first.code, first.stderr).toBe(0);
    const socket = agentSocket(alice);
    expect(statSync(join(socket, '..')).mode & 0o777).toBe(0o700);
    expect(statSync(socket).mode & 0o777).toBe(0o600);

    const warm = withoutPassphrase(env);
    const status = await runCli(['status', '--json'], { env: warm });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).signed_in).toBe(true);
    const roles = await runCli(['roles'], { env: warm });
    expect(roles.code, roles.stderr).toBe(0);

    // The agent: its argv and environment hold nothing secret; the key is on no disk.
    const state = (await askAgent(socket, { op: 'status' })) as {
      pid: number;
      keys: Array<{ kid: string }>;
    };
    const pid = state.pid;
    const kid = state.keys[0]!.kid;
    const key = (await askAgent(socket, { op: 'get', kid }))?.key as string;
    expect(key).toMatch(/^[\w-]{43}$/);
    const raw = Buffer.from(key, 'base64url');
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual([
      process.execPath,
      BIN,
      '__agent',
      '--socket',
      socket,
      '',
    ]);
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).toBe('');
    for (const f of filesUnder(alice.home.dir)) {
      const bytes = readFileSync(f);
      expect(bytes.includes(raw), f).toBe(false);
      expect(bytes.includes(Buffer.from(key)), f).toBe(false);
    }

    const lock = await runCli(['lock'], { env: warm });
    expect(lock.code).toBe(0);
    expect(lock.stderr).toContain(
      'locked: the unlock agent forgot the key of the file store and stopped',
    );
    expect(await gone(pid)).toBe(true);
    expect(existsSync(socket)).toBe(false);
    const after = await runCli(['status'], { env: warm });
    expect(after.code).toBe(4);
    const again = await runCli(['lock'], { env: warm });
    expect(again.stderr).toContain('nothing to lock');
  });

  it('the agent exits by itself when its timeout ends', async () => {
    const env = { ...alice.env, JITCTL_AGENT_TIMEOUT: '2s' };
    expect((await runCli(['status'], { env })).code).toBe(0);
    const pid = (await askAgent(agentSocket(alice), { op: 'status' }))?.pid as number;
    expect(pid).toBeGreaterThan(0);
    expect(await gone(pid)).toBe(true);
    expect((await runCli(['status'], { env: withoutPassphrase(env) })).code).toBe(4);
  });

  it('a wrong passphrase caches nothing; a loose directory is refused with the fix', async () => {
    const wrong = { ...alice.env, JITCTL_AGENT_TIMEOUT: '5m', JITCTL_FILE_PASSPHRASE: 'wrong' };
    expect((await runCli(['status'], { env: wrong })).code).toBe(4);
    expect(await askAgent(agentSocket(alice), { op: 'status' })).toBeUndefined();

    const dir = join(agentSocket(alice), '..');
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    const r = await runCli(['status'], { env: { ...alice.env, JITCTL_AGENT_TIMEOUT: '5m' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing to use the unlock agent's directory ${dir}`);
    expect(r.stderr).toContain(`chmod 700 ${dir}`);
    chmodSync(dir, 0o700);
  });

  it('a bad timeout is a usage error naming where it came from', async () => {
    const r = await runCli(['status'], { env: { ...alice.env, JITCTL_AGENT_TIMEOUT: '2days' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('JITCTL_AGENT_TIMEOUT "2days" is not a duration');
    const long = await runCli(['status'], { env: { ...alice.env, JITCTL_AGENT_TIMEOUT: '13h' } });
    expect(long.stderr).toContain('longer than the maximum of 12h');
  });
});

describe('jitctl doctor', () => {
  it('a healthy setup: one line per check, exit 0, JSON with the same, and no secret anywhere', async () => {
    const kube = join(alice.home.dir, 'kubeconfig');
    writeFileSync(
      kube,
      'users:\n  - name: prod\n    user:\n      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: jitctl\n        args: [credential, db-read, --kube]\n',
    );
    expect((await alice.run(['request', 'db-read'])).code).toBe(0);
    const env = { ...alice.env, KUBECONFIG: kube, PATH: `${binDir}:${alice.env.PATH}` };
    const r = await runCli(['doctor'], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const name of [
      'node',
      'config',
      'server',
      'broker',
      'tls',
      'clock',
      'identity provider',
      'store',
      'agent',
      'passphrase',
      'session',
      'credentials',
      'access',
      'kubectl',
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^[✓!✗] ${name} `, 'm'));
    }
    expect(r.stdout).toMatch(
      /^✓ broker +http:\/\/127\.0\.0\.1:\d+ answers \(broker \d+\.\d+\.\d+, \d+ ms\)$/m,
    );
    expect(r.stdout).toMatch(/^✓ session +alice; acr mfa, signed in .* ago; groups: developers;/m);
    expect(r.stdout).toMatch(/^✓ credentials +1 active: db-read until \d\d:\d\d/m);
    expect(r.stdout).toMatch(
      new RegExp(`^✓ kubectl +user prod in ${kube} calls ${binDir}/jitctl for db-read$`, 'm'),
    );
    expect(r.stdout).toMatch(/^all checks passed/m);

    const json = await runCli(['doctor', '--json'], { env });
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { ok: boolean; checks: Array<Record<string, string>> };
    expect(doc.ok).toBe(true);
    for (const c of doc.checks) {
      expect(Object.keys(c).sort()).toEqual(expect.arrayContaining(['message', 'name', 'status']));
      expect(['ok', 'warn', 'fail']).toContain(c.status);
    }
    for (const secret of await alice.secrets()) {
      expect(r.stdout + r.stderr + json.stdout).not.toContain(secret);
    }
  });

  it('fails (exit 1) with a fix for each problem: not signed in, an unreachable broker, no keychain', async () => {
    const fresh = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'p' });
    try {
      const r = await runCli(['doctor', '--server', broker.url], { env: fresh.env });
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`✗ session           not signed in to ${broker.url}`);
      expect(r.stdout).toContain(`fix: jitctl login --server ${broker.url}`);

      const started = Date.now();
      const down = await runCli(['doctor', '--server', 'http://127.0.0.1:1', '--json'], {
        env: fresh.env,
      });
      expect(down.code).toBe(1);
      expect(Date.now() - started).toBeLessThan(15_000);
      const doc = JSON.parse(down.stdout) as {
        ok: boolean;
        checks: Array<{ name: string; status: string; fix?: string }>;
      };
      expect(doc.ok).toBe(false);
      const b = doc.checks.find((c) => c.name === 'broker');
      expect(b?.status).toBe('fail');
      expect(b?.fix).toBeTruthy();

      const keychain = await runCli(['doctor', '--server', broker.url, '--store', 'keychain'], {
        env: fresh.env,
      });
      expect(keychain.code).toBe(1);
      expect(keychain.stdout).toMatch(
        /^✗ store +the OS keychain is not available: no D-Bus session/m,
      );
      expect(keychain.stdout).toContain('--store file');
    } finally {
      fresh.cleanup();
    }
  });

  it('warns when the token carries no groups while roles match on groups', async () => {
    const b = await startDevBroker({ env: { JITCTL_SERVER_GROUPS_CLAIM: 'no_such_claim' } });
    const u = user('alice', b);
    try {
      await signIn(u, b, true);
      const r = await runCli(['doctor'], { env: u.env });
      expect(r.stdout).toMatch(
        /^! groups +your token carries no groups, but \d+ roles \(.+\) match on groups$/m,
      );
      expect(r.stdout).toContain('groups_claim');
      expect(r.code).toBe(0);
    } finally {
      await b.cleanup();
      u.home.cleanup();
    }
  });

  it('shows the agent running, and the passphrase then not needed', async () => {
    const env = { ...alice.env, JITCTL_AGENT_TIMEOUT: '5m' };
    expect((await runCli(['status'], { env })).code).toBe(0);
    const r = await runCli(['doctor'], { env: withoutPassphrase(env) });
    expect(r.stdout).toMatch(
      /^✓ agent +on, running \(pid \d+, socket .*\): unlocked until \d\d:\d\d/m,
    );
    expect(r.stdout).toMatch(/^✓ passphrase +not needed while the agent holds the key$/m);
    expect(r.stdout).toMatch(/^✓ session +alice;/m);
    await runCli(['lock'], { env });
  });
});

describe('shell completion', () => {
  const completionEnv = () => ({ ...alice.env, PATH: `${binDir}:${alice.env.PATH}` });

  /** Runs the bash completion function for a command line, as bash would on Tab. */
  function bashComplete(line: string[]): string[] {
    const script = execFileSync(process.execPath, [BIN, 'completion', 'bash'], {
      env: completionEnv(),
    }).toString();
    const file = join(alice.home.dir, 'completion.bash');
    writeFileSync(file, script);
    const words = line.map((w) => `'${w}'`).join(' ');
    const out = execFileSync(
      'bash',
      [
        '-c',
        `source ${file}; COMP_WORDS=(${words}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _jitctl; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { env: completionEnv() },
    ).toString();
    return out.split('\n').filter(Boolean);
  }

  it('bash: every visible command and flag, generated from the command tree', async () => {
    const help = (await runCli(['--help'], { env: alice.env })).stdout;
    const commands = [...help.matchAll(/^ {2}([a-z][\w-]*)\b/gm)].map((m) => m[1]);
    const offered = bashComplete(['jitctl', '']);
    for (const c of commands) expect(offered).toContain(c);
    expect(offered).not.toContain('__agent');
    expect(offered).not.toContain('__complete');
    expect(offered).toEqual(expect.arrayContaining(['doctor', 'completion', 'lock']));
    expect(bashComplete(['jitctl', 'request', '--'])).toEqual(
      expect.arrayContaining(['--for', '--reason', '--ticket', '--no-wait', '--timeout', '--json']),
    );
    expect(bashComplete(['jitctl', 'list', '--state', ''])).toEqual([
      'pending',
      'scheduled',
      'approved',
      'denied',
      'cancelled',
      'expired',
      'revoked',
    ]);
    expect(bashComplete(['jitctl', 'audit', ''])).toEqual(['verify', 'tail', 'list', 'help']);
    expect(bashComplete(['jitctl', 'completion', ''])).toEqual(['bash', 'zsh', 'fish']);
  });

  it('bash: role names and request ids from the broker, then from the cache', async () => {
    expect(bashComplete(['jitctl', 'request', ''])).toEqual(
      expect.arrayContaining(['prod-deploy', 'staging-admin', 'db-read']),
    );
    const id = JSON.parse((await alice.run(['list', '--json'])).stdout)[0].id as string;
    expect(bashComplete(['jitctl', 'show', ''])).toContain(id);
    // Asked again at once: the cache answers.
    const cached = await runCli(['__complete', 'roles', '--server', broker.url], {
      env: alice.env,
    });
    expect(cached.stdout).toContain('prod-deploy\tDeploy to production\n');
  });

  it('__complete never asks anything, even at a terminal with a locked file store', async () => {
    const env = withoutPassphrase(alice.env);
    const t = atPty(env, ['__complete', 'requests']);
    expect(await t.done).toBe(0);
    expect(t.screen()).not.toMatch(/[Pp]assphrase/);
    const nothing = await runCli(['__complete', 'roles', '--server', 'http://127.0.0.1:1'], {
      env,
    });
    expect(nothing).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('zsh: the same tree, with descriptions', () => {
    const script = execFileSync(process.execPath, [BIN, 'completion', 'zsh'], {
      env: completionEnv(),
    }).toString();
    const file = join(alice.home.dir, '_jitctl');
    writeFileSync(file, script);
    execFileSync('zsh', ['-n', file]);
    const harness = `
compdef() { :; }
compadd() { print -r -- "compadd: \${(j: :)@}"; }
_describe() { local arr=\${@[-1]}; print -r -- "describe: \${(j:|:)\${(P)arr}}"; }
_files() { print -r -- "_files"; }
_normal() { print -r -- "_normal: \${(j: :)words}"; }
source ${file}
t() { words=("$@"); CURRENT=\${#words}; _jitctl; }
t jitctl ''
t jitctl request ''
t jitctl list --state ''
t jitctl exec db-read -- ls
t jitctl policy check ''
`;
    const out = execFileSync('zsh', ['-f', '-c', harness], { env: completionEnv() })
      .toString()
      .split('\n');
    expect(out[0]).toMatch(/^describe: login:sign in to a broker .*\|doctor:check this machine/);
    expect(out[1]).toMatch(/^describe: (.*\|)?prod-deploy:Deploy to production/);
    expect(out[2]).toBe('compadd: -- pending scheduled approved denied cancelled expired revoked');
    expect(out[3]).toBe('_normal: ls');
    expect(out[4]).toBe('_files');
  });

  it.skipIf(!existsSync('/usr/bin/fish'))(
    'fish: commands, flags, roles and the command after --',
    () => {
      const script = execFileSync(process.execPath, [BIN, 'completion', 'fish'], {
        env: completionEnv(),
      }).toString();
      const file = join(alice.home.dir, 'jitctl.fish');
      writeFileSync(file, script);
      const complete = (line: string) =>
        execFileSync('fish', ['-c', `source ${file}; complete -C '${line}'`], {
          env: completionEnv(),
        })
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t')[0]);
      expect(complete('jitctl ')).toEqual(expect.arrayContaining(['request', 'doctor', 'lock']));
      expect(complete('jitctl request --')).toEqual(expect.arrayContaining(['--for', '--reason']));
      expect(complete('jitctl request ')).toEqual(
        expect.arrayContaining(['prod-deploy', 'db-read']),
      );
      expect(complete('jitctl audit ')).toEqual(expect.arrayContaining(['verify', 'list']));
      expect(complete('jitctl exec db-read -- ls --al')).toContain('--all');
    },
  );
});

// The terminal tests need util-linux `script`.
if (!existsSync(SCRIPT)) throw new Error('these tests need `script` (apt-get install bsdutils)');
