import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fileStoreEnv,
  homeStore,
  type SeededCredential,
  seedCredential,
  sh,
  startCredentialBroker,
  waitFor,
} from '../credentials/fixtures.js';
import type { TestBroker } from '../support/broker.js';
import { BIN, runCli, spawnCli, testHome } from '../support/cli.js';

/**
 * `jitctl exec` as users run it: the built binary, a real file store with a real passphrase,
 * real child processes. Signals and terminals are in exec-signals.test.ts.
 */

const home = testHome();
let b: TestBroker;
let env: Record<string, string>;
let deploy: SeededCredential;
const bin = join(home.dir, 'bin');

beforeAll(async () => {
  b = await startCredentialBroker();
  env = fileStoreEnv(home, b.url);
  const store = homeStore(home);
  deploy = await seedCredential(store, { role: 'prod-deploy', broker: b });
  await seedCredential(store, { role: 'old', validMs: -60_000, server: b.url });
  mkdirSync(bin);
  // A program literally named --help, to show that everything after -- is the command.
  writeFileSync(join(bin, '--help'), '#!/bin/sh\necho "I am --help, args: $*"\n', { mode: 0o755 });
  writeFileSync(join(bin, 'not-executable'), '#!/bin/sh\necho never\n', { mode: 0o644 });
  mkdirSync(join(bin, 'a-directory'));
});
afterAll(async () => {
  home.cleanup();
  await b?.close();
});

const exec = (args: string[], extra: Record<string, string> = {}) =>
  runCli(['exec', ...args], { env: { ...env, ...extra } });

describe('jitctl exec: exit codes', () => {
  it.each([0, 1, 2, 42, 255])('passes the command’s exit code %i through', async (code) => {
    const r = await exec(['prod-deploy', '--', 'sh', '-c', `exit ${code}`]);
    expect(r.code).toBe(code);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('');
  });

  it.each([
    ['SIGKILL', 'SIGKILL', null],
    ['SIGTERM', 'SIGTERM', null],
    ['SIGSEGV', null, 139],
  ])(
    'when the command dies of %s, jitctl dies of it too (128+n where it would dump core)',
    async (sig, signal, code) => {
      const r = await exec(['prod-deploy', '--', 'sh', '-c', `kill -${sig.slice(3)} $$`]);
      expect(r.signal).toBe(signal);
      expect(r.code).toBe(code);
      expect(r.stderr).toBe('');
    },
  );

  it('exits 127 for a command that does not exist', async () => {
    const r = await exec(['prod-deploy', '--', 'no-such-command-jitctl']);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe(
      'error: no-such-command-jitctl: command not found\nhint: check the name, or give its path\n',
    );
    const path = await exec(['prod-deploy', '--', join(bin, 'no-such-file')]);
    expect(path.code).toBe(127);
    expect(path.stderr).toBe(
      `error: ${join(bin, 'no-such-file')}: no such file\nhint: check the path of the command\n`,
    );
  });

  it('exits 126 for a file without execute permission and for a directory, each said as it is', async () => {
    const file = await exec(['prod-deploy', '--', join(bin, 'not-executable')]);
    expect(file.code).toBe(126);
    expect(file.stderr).toBe(
      `error: ${join(bin, 'not-executable')}: not executable\n` +
        `hint: it has no execute permission; if it is meant to be run: chmod +x ${join(bin, 'not-executable')}\n`,
    );
    const dir = await exec(['prod-deploy', '--', join(bin, 'a-directory')]);
    expect(dir.code).toBe(126);
    expect(dir.stderr).toBe(
      `error: ${join(bin, 'a-directory')}: is a directory\nhint: name a program to run, not a directory\n`,
    );
    expect(dir.stderr).not.toContain('chmod');
    // Found on PATH but not runnable: named with where it was found.
    const onPath = await exec(['prod-deploy', '--', 'a-directory'], {
      PATH: `${bin}:/nonexistent`,
    });
    expect(onPath.code).toBe(126);
    expect(onPath.stderr).toContain(
      `error: a-directory: is a directory (${join(bin, 'a-directory')})\n`,
    );
  });

  it('says so before asking for anything: a missing command with --request files no request', async () => {
    const r = await exec([
      'prod-deploy',
      '--request',
      '--reason',
      'x',
      '--',
      'no-such-command-jitctl',
    ]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('error: no-such-command-jitctl: command not found');
    expect(r.stderr).not.toContain('request');
  });
});

describe('jitctl exec: the command line', () => {
  it('runs a program named --help: everything after -- is the command, verbatim', async () => {
    const r = await exec(['prod-deploy', '--', '--help', '--store', 'memory', '--', '-x'], {
      PATH: `${bin}:${env.PATH}`,
    });
    expect(r.stdout).toBe('I am --help, args: --store memory -- -x\n');
    expect(r.code).toBe(0);
  });

  it('a command without --: says to put -- before it, with the user’s own words', async () => {
    const r = await exec(['prod-deploy', 'ls', '/tmp']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "error: put -- before the command to run (jitctl's own options go before it): jitctl exec [role] -- command [args…]\n" +
        'hint: jitctl exec prod-deploy -- ls /tmp\n',
    );
    const quoted = await exec(['prod-deploy', 'sh', 'it has spaces']);
    expect(quoted.stderr).toContain("hint: jitctl exec prod-deploy -- sh 'it has spaces'\n");
    // An option of the command's, without --: commander's own message, and where -- goes.
    const option = await exec(['prod-deploy', 'ls', '-la']);
    expect(option.code).toBe(2);
    expect(option.stderr).toBe(
      "error: unknown option '-la'\n" +
        "hint: if it is the command's, put -- before the command: jitctl exec [role] -- command [args…]\n",
    );
  });

  it('without a command: a usage error (exit 2) showing the form', async () => {
    for (const args of [['prod-deploy'], ['prod-deploy', '--']]) {
      const r = await exec(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        'error: no command to run\nhint: put the command after --: jitctl exec [role] -- command [args…]\n',
      );
    }
  });

  it('refuses request flags without --request, and --request without a role', async () => {
    const request = await exec(['--request', '--', 'true']);
    expect(request.code).toBe(2);
    expect(request.stderr).toContain('error: --request needs the role to ask for');
    const reason = await exec(['prod-deploy', '--reason', 'x', '--', 'true']);
    expect(reason.code).toBe(2);
    expect(reason.stderr).toContain('error: --reason goes with --request');
    const noStore = await exec(['prod-deploy', '--no-store', '--', 'true']);
    expect(noStore.code).toBe(2);
    expect(noStore.stderr).toContain('error: --no-store goes with --request');
  });
});

describe('jitctl exec: which credential', () => {
  it('without a role uses the only active one (the expired one does not count)', async () => {
    const r = await exec(['--', 'sh', '-c', 'echo "$JITCTL_ROLE $JITCTL_REQUEST_ID"']);
    expect(r.stdout).toBe(`prod-deploy ${deploy.requestId}\n`);
    expect(r.code).toBe(0);
  });

  it('none for the role: exit 3 and the command that requests one', async () => {
    const r = await exec(['db-read', '--', 'true']);
    expect(r.code).toBe(3);
    // The broker answers the hint's question (src/cli/hints.ts): its policy has no db-read.
    expect(r.stderr).toMatch(
      /^error: no active credential for db-read\nhint: http:\/\/127\.0\.0\.1:\d+ has no role db-read you may request; roles you may request: any\n$/,
    );
  });

  it('an expired credential is never used: exit 3, with a hint', async () => {
    const r = await exec(['old', '--', 'sh', '-c', 'echo ran']);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: the credential for old expired at \d\d:\d\d \(1m ago\)\n/);
    expect(r.stderr).toContain('has no role old you may request; roles you may request: any');
  });

  it('several active and no role: a usage error listing them', async () => {
    const h = testHome();
    try {
      const store = homeStore(h);
      await seedCredential(store, { role: 'prod-deploy', broker: b });
      await seedCredential(store, { role: 'db-read', validMs: 90 * 60_000, broker: b });
      const r = await runCli(['exec', '--', 'true'], { env: fileStoreEnv(h, b.url) });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /^error: several credentials are active: db-read \(expires in 1h30m\), prod-deploy \(expires in 1[45]m\)\n/,
      );
      expect(r.stderr).toContain('hint: name the role, e.g. jitctl exec db-read -- …');
    } finally {
      h.cleanup();
    }
  });

  it('another broker’s credential is not this broker’s', async () => {
    const r = await exec(['prod-deploy', '--server', 'https://other.example.test', '--', 'true']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('no active credential for prod-deploy');
  });

  it('file store: wrong passphrase exits 4; no passphrase and no terminal exits 4 and says how', async () => {
    const wrong = await exec(['prod-deploy', '--', 'true'], { JITCTL_FILE_PASSPHRASE: 'nope' });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toContain('error: wrong passphrase for the encrypted credential store');
    const { JITCTL_FILE_PASSPHRASE: _, ...without } = env;
    const missing = await runCli(['exec', 'prod-deploy', '--', 'true'], { env: without });
    expect(missing.code).toBe(4);
    expect(missing.stderr).toBe(
      'error: the encrypted file store needs its passphrase, and there is no terminal to ask for it\n' +
        'hint: set JITCTL_FILE_PASSPHRASE (e.g. from your CI secret store), or use the OS keychain (--store keychain)\n',
    );
  });
});

describe('jitctl exec: the environment', () => {
  it('is the parent’s, minus JITCTL_*, plus the role’s env and the session variables, byte for byte', async () => {
    const parent: Record<string, string> = {
      ...env,
      JITCTL_FEDERATED_TOKEN: 'ci-token-must-not-leak',
      JITCTL_DEBUG: '0',
      JITCTL_ROLE: 'stale-from-outside',
      KUBE_TOKEN: 'overridden by the role',
      ODD_VALUE: 'spaces  and\ttabs, "quotes", \'single\', = signs, ünïcødé ✓, $HOME',
      MULTILINE: 'line one\nline two\n',
      EMPTY: '',
      lower_case: 'kept',
    };
    const r = await runCli(['exec', 'prod-deploy', '--', 'env', '-0'], { env: parent });
    expect(r.code).toBe(0);
    const seen = Object.fromEntries(
      r.stdout
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    const expected: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(parent)) if (!k.startsWith('JITCTL_')) expected[k] = v;
    Object.assign(expected, {
      KUBE_TOKEN: deploy.token,
      JITCTL_ROLE: 'prod-deploy',
      JITCTL_REQUEST_ID: deploy.requestId,
      JITCTL_EXPIRES_AT: deploy.expiresAt.replace(/\.\d{3}Z$/, 'Z'),
      JITCTL_GRANT_EXPIRES_AT: deploy.grantExpiresAt.replace(/\.\d{3}Z$/, 'Z'),
      JITCTL_SERVER: b.url,
      JITCTL_SESSION: deploy.requestId,
      // Marks every process of this session, so that ending it finds them all (not secret).
      JITCTL_SESSION_ID: expect.stringMatching(/^[A-Za-z0-9_-]{12}$/),
    });
    expect(seen).toEqual(expected);
    expect(r.stdout).not.toContain('ci-token-must-not-leak');
    expect(r.stdout).not.toContain(env.JITCTL_FILE_PASSPHRASE);
  });

  it('skips role variables that are reserved or not names, with a warning', async () => {
    const h = testHome();
    try {
      await seedCredential(homeStore(h), {
        broker: b,
        role: 'odd',
        env: { GOOD: 'yes', LD_PRELOAD: '/tmp/evil.so', JITCTL_SESSION: 'x', 'BAD NAME': 'v' },
      });
      const r = await runCli(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
        ['exec', 'odd', '--', 'sh', '-c', 'echo "$GOOD|${LD_PRELOAD-unset}"'],
        {
          env: fileStoreEnv(h, b.url),
        },
      );
      expect(r.stdout).toBe('yes|unset\n');
      expect(r.stderr).toBe(
        "warning: ignored variables from the role's env: LD_PRELOAD, JITCTL_SESSION, BAD NAME (not valid names, or reserved: JITCTL_*, LD_*, DYLD_*)\n",
      );
    } finally {
      h.cleanup();
    }
  });

  it('refuses to nest inside a jitctl session unless --allow-nested', async () => {
    const nested = await exec(['prod-deploy', '--', 'sh', '-c', 'echo ran'], {
      JITCTL_SESSION: 'req_outer',
      JITCTL_ROLE: 'outer-role',
    });
    expect(nested.code).toBe(1);
    expect(nested.stdout).toBe('');
    expect(nested.stderr).toBe(
      'error: already inside a jitctl session (outer-role); refusing to nest\n' +
        'hint: exit that shell or command first, or pass --allow-nested\n',
    );
    // A real nesting: jitctl exec inside jitctl exec.
    const inner = sh(process.execPath, BIN, 'exec', 'prod-deploy', '--', 'true');
    const real = await exec(['prod-deploy', '--', 'sh', '-c', inner]);
    expect(real.code).toBe(1);
    expect(real.stderr).toContain('refusing to nest');
    const allowed = await exec(
      ['prod-deploy', '--allow-nested', '--', 'sh', '-c', 'echo "$JITCTL_SESSION"'],
      {
        JITCTL_SESSION: 'req_outer',
      },
    );
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toBe(`${deploy.requestId}\n`);
  });
});

describe('jitctl exec: the token stays in the environment', () => {
  it('never appears in /proc/<child>/cmdline, jitctl’s own cmdline, or jitctl’s output', async () => {
    const marker = join(home.dir, 'cmdline-child');
    const run = spawnCli(
      [
        'exec',
        'prod-deploy',
        '--',
        'sh',
        '-c',
        `echo $$ > ${marker}.pid; while [ ! -e ${marker}.stop ]; do sleep 0.05; done`,
      ],
      { env },
    );
    const childPid = await waitFor(() => {
      const text = existsSync(`${marker}.pid`) ? readFileSync(`${marker}.pid`, 'utf8') : '';
      return text.endsWith('\n') ? Number(text) : undefined;
    }, 'the child to start');
    const cmdline = readFileSync(`/proc/${childPid}/cmdline`);
    const environ = readFileSync(`/proc/${childPid}/environ`);
    const own = readFileSync(`/proc/${run.child.pid}/cmdline`);
    writeFileSync(`${marker}.stop`, '');
    const r = await run.done;
    expect(r.code).toBe(0);
    // The check can fail: the token is really in the child's environment.
    expect(environ.includes(Buffer.from(`KUBE_TOKEN=${deploy.token}`))).toBe(true);
    expect(cmdline.includes(Buffer.from(deploy.token))).toBe(false);
    expect(own.includes(Buffer.from(deploy.token))).toBe(false);
    expect(r.stdout + r.stderr).not.toContain(deploy.token);
    expect(existsSync(`/proc/${childPid}`)).toBe(false); // reaped: no zombie
  });
});
