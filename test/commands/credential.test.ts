import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keychainStore } from '../../src/credentials/keychain-store.js';
import {
  fileStoreEnv,
  homeStore,
  type SeededCredential,
  seedCredential,
  sh,
  startCredentialBroker,
  TEST_SERVER,
} from '../credentials/fixtures.js';
import type { TestBroker } from '../support/broker.js';
import { BIN, runCli, testHome } from '../support/cli.js';
import { type PrivateKeyring, startKeyring } from '../support/keyring.js';

/** `jitctl credential` for tools: kubectl's exec plugin protocol, JSON, and `eval`-able exports. */

const home = testHome();
let b: TestBroker;
let env: Record<string, string>;
let deploy: SeededCredential;
const QUOTED = `it's "quoted" $(not run) \`nor this\` \\ ✓`;

beforeAll(async () => {
  b = await startCredentialBroker();
  env = fileStoreEnv(home, b.url);
  deploy = await seedCredential(homeStore(home), {
    broker: b,
    role: 'prod-deploy',
    env: { KUBE_TOKEN: 'kube-token-value', ODD: QUOTED },
  });
});
afterAll(async () => {
  home.cleanup();
  await b?.close();
});

const credential = (args: string[], extra: Record<string, string> = {}) =>
  runCli(['credential', ...args], { env: { ...env, ...extra } });

/** Runs a shell command line under a pseudo-terminal (util-linux `script`); its output. */
function underPty(command: string): Promise<{ code: number | null; output: string }> {
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: 'pipe' });
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

describe('jitctl credential --kube (kubectl exec plugin)', () => {
  const expected = (apiVersion: string) => ({
    apiVersion,
    kind: 'ExecCredential',
    status: {
      token: deploy.token,
      expirationTimestamp: deploy.expiresAt.replace(/\.\d{3}Z$/, 'Z'),
    },
  });

  it('prints a v1 ExecCredential by default', async () => {
    const r = await credential(['prod-deploy', '--kube']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(expected('client.authentication.k8s.io/v1'));
    expect(r.stderr).toBe('');
  });

  it('answers in the apiVersion kubectl asks for in KUBERNETES_EXEC_INFO', async () => {
    for (const apiVersion of [
      'client.authentication.k8s.io/v1beta1',
      'client.authentication.k8s.io/v1',
    ]) {
      const info = JSON.stringify({
        kind: 'ExecCredential',
        apiVersion,
        spec: { interactive: false },
      });
      const r = await credential(['prod-deploy', '--kube'], { KUBERNETES_EXEC_INFO: info });
      expect(JSON.parse(r.stdout)).toEqual(expected(apiVersion));
    }
  });

  it('refuses an apiVersion it does not speak, and malformed exec info', async () => {
    const old = await credential(['--kube'], {
      KUBERNETES_EXEC_INFO: '{"apiVersion":"client.authentication.k8s.io/v1alpha1"}',
    });
    expect(old.code).toBe(2);
    expect(old.stdout).toBe('');
    expect(old.stderr).toContain(
      'error: kubectl asked for ExecCredential client.authentication.k8s.io/v1alpha1; jitctl answers',
    );
    const bad = await credential(['--kube'], { KUBERNETES_EXEC_INFO: '{not json' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('error: KUBERNETES_EXEC_INFO is not valid JSON');
  });

  it('with none stored and no terminal: a clear error on stderr, nothing on stdout, non-zero', async () => {
    const r = await credential(['db-read', '--kube']);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    // The broker answers the hint's question (src/cli/hints.ts): its policy has no db-read.
    expect(r.stderr).toMatch(
      /^error: no active credential for db-read\nhint: http:\/\/127\.0\.0\.1:\d+ has no role db-read you may request; roles you may request: any\n$/,
    );
  });
});

describe('jitctl credential --json, --env, and the summary', () => {
  it('--json: token, expiry, role, request id and server', async () => {
    const r = await credential(['--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      token: deploy.token,
      expires_at: deploy.expiresAt.replace(/\.\d{3}Z$/, 'Z'),
      grant_expires_at: deploy.grantExpiresAt.replace(/\.\d{3}Z$/, 'Z'),
      role: 'prod-deploy',
      request_id: deploy.requestId,
      server: b.url,
    });
  });

  it('--env: export lines that a shell evaluates back to the exact values', async () => {
    const r = await credential(['prod-deploy', '--env']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("export KUBE_TOKEN='kube-token-value'\n");
    expect(r.stdout).not.toContain('JITCTL_SESSION');
    const evaluated = await promisify(execFile)(
      'sh',
      [
        '-c',
        `eval "$(${sh(process.execPath, BIN, 'credential', 'prod-deploy', '--env')})" && printf '%s|%s|%s' "$ODD" "$JITCTL_ROLE" "$KUBE_TOKEN"`,
      ],
      { env },
    );
    expect(evaluated.stderr).toBe('');
    expect(evaluated.stdout).toBe(`${QUOTED}|prod-deploy|kube-token-value`);
  });

  it('--env refuses a terminal (the scrollback would keep the secret) unless --force', async () => {
    const refused = await underPty(sh(process.execPath, BIN, 'credential', 'prod-deploy', '--env'));
    expect(refused.code).toBe(2);
    expect(refused.output).toContain(
      'error: refusing to print the credential to a terminal: it would stay in the scrollback',
    );
    expect(refused.output).not.toContain('kube-token-value');
    const forced = await underPty(
      sh(process.execPath, BIN, 'credential', 'prod-deploy', '--env', '--force'),
    );
    expect(forced.code).toBe(0);
    expect(forced.output).toContain("export KUBE_TOKEN='kube-token-value'");
  });

  it('no flag: a short summary without the token', async () => {
    const r = await credential(['prod-deploy']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^role: +prod-deploy\\nserver: +${b.url.replaceAll('.', '\\.')}\\nrequest: +${deploy.requestId}\\n` +
          'expires: +\\d\\d:\\d\\d \\(in 1[45]m\\), \\S+Z\\nvariables: +KUBE_TOKEN, ODD\\n$',
      ),
    );
    expect(r.stdout).not.toContain(deploy.token);
    expect(r.stdout).not.toContain('kube-token-value');
  });

  it('usage errors: --force without --env, two formats at once', async () => {
    const force = await credential(['--force']);
    expect(force.code).toBe(2);
    expect(force.stderr).toBe('error: --force goes with --env\n');
    const both = await credential(['--json', '--kube']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("option '--json' cannot be used with option '--kube'");
  });
});

describe('jitctl credential with the OS keychain', () => {
  let keyring: PrivateKeyring;
  const kcHome = testHome();
  beforeAll(async () => {
    keyring = await startKeyring();
    process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
  });
  afterAll(async () => {
    await keyring.stop();
    delete process.env.DBUS_SESSION_BUS_ADDRESS;
    kcHome.cleanup();
  });
  const kcEnv = () => ({ ...kcHome.env, JITCTL_SERVER: b.url, ...keyring.env });

  it('reads what another process stored in the keychain (the default store)', async () => {
    const seeded = await seedCredential(keychainStore({ env: process.env }), {
      role: 'kc-role',
      broker: b,
    });
    const r = await runCli(['credential', 'kc-role', '--json'], { env: kcEnv() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ token: seeded.token, role: 'kc-role' });
    const ran = await runCli(
      ['exec', 'kc-role', '--', 'sh', '-c', 'test "$KUBE_TOKEN" = "$WANT" && echo same'],
      {
        env: { ...kcEnv(), WANT: seeded.token },
      },
    );
    expect(ran.stdout).toBe('same\n');
  });

  it('no D-Bus session: one clear error, no library noise, the way to the file store', async () => {
    const r = await runCli(['credential', '--kube'], {
      env: { ...kcHome.env, JITCTL_SERVER: TEST_SERVER },
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'error: the OS keychain is not available: no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set), so no Secret Service can be reached\n' +
        'hint: run jitctl inside a desktop or `dbus-run-session` session with gnome-keyring or KWallet, ' +
        'or use the encrypted file store: --store file (or JITCTL_STORE=file, with JITCTL_FILE_PASSPHRASE for non-interactive use)\n',
    );
  });

  it('a keyring daemon that stopped answering: an error and an exit, never a hang', async () => {
    keyring.pause();
    try {
      // The list path (no role) and the read path (a role); runCli kills a hung jitctl at 30 s.
      for (const args of [
        ['credential', '--kube'],
        ['exec', 'kc-role', '--', 'true'],
      ]) {
        const r = await runCli(args, { env: kcEnv(), timeoutMs: 30_000 });
        expect(r.signal).toBeNull();
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(
          /^error: the OS keychain did not answer( within 10 s)? \(trying to (list|read from) it\)\n/,
        );
        expect(r.stderr).toContain('--store file');
      }
    } finally {
      keyring.resume();
    }
  });

  it('ends even when a call it gave up on still holds the process open', async () => {
    // A stand-in for a native keychain call that never returns: a handle that keeps the event
    // loop alive after the command has failed. src/cli/entry.ts ends the process anyway.
    const child = spawn(
      process.execPath,
      ['--import', 'data:text/javascript,setInterval(()=>{},1e9)', BIN, 'credential', '--kube'],
      { env: { ...kcHome.env, JITCTL_SERVER: TEST_SERVER }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.on('close', (c, s) => resolve([c, s])),
    );
    clearTimeout(kill);
    expect(signal).toBeNull();
    expect(code).toBe(1);
    expect(stderr).toContain('error: the OS keychain is not available');
  });

  it('a bus address that leads nowhere: unavailable, never a silent fallback', async () => {
    const r = await runCli(['credential', 'kc-role', '--json'], {
      env: {
        ...kcHome.env,
        JITCTL_SERVER: TEST_SERVER,
        DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/jitctl-test-bus',
      },
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^error: the OS keychain is not available \(trying to read from it\): /,
    );
    expect(r.stderr).toContain('--store file');
  });
});
