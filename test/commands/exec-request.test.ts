import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest, RequestPage } from '../../src/api/schemas.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { credentialKey, decodeCredential, sessionKey } from '../../src/credentials/records.js';
import { actor, POLICY, people } from '../server/helpers.js';
import { startTestBroker, storeSession, type TestBroker } from '../support/broker.js';
import { runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { keyringAvailable, type PrivateKeyring, startKeyring } from '../support/keyring.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';

/**
 * `jitctl exec --request` and `jitctl shell --request` with the real binary against a real broker
 * (in-process on 127.0.0.1, a real test issuer): no active credential → the request is filed and
 * waited for through the request flow, a lead approves over HTTP, then the command runs with the
 * new credential. `--no-store` is checked where it matters: every file under the home byte for
 * byte, and every entry of a real gnome-keyring in a private D-Bus session.
 */

const AUD = 'https://jit.example.com';
let broker: TestBroker;
let ci: TestIssuer;
const homes: TestHome[] = [];

beforeAll(async () => {
  ci = await startTestIssuer({ clientId: 'ci' });
  broker = await startTestBroker({
    policy: POLICY.replace(
      'requesters: [group:developers, group:leads]\n',
      'requesters: [group:developers, group:leads, group:ci]\n',
    ),
    settings: {
      trusted_issuers: JSON.stringify([
        {
          name: 'ci',
          issuer: ci.issuer,
          audience: AUD,
          conditions: { repository: 'acme/app' },
          groups: ['ci'],
        },
      ]),
    },
  });
}, 60_000);

afterAll(async () => {
  for (const h of homes) h.cleanup();
  await broker?.close();
  await ci?.close();
});

/** alice's home with the encrypted file store, signed in. */
async function aliceHome(extra: Record<string, string> = {}) {
  const home = testHome({
    JITCTL_SERVER: broker.url,
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: 'alice exec-request passphrase',
    ...extra,
  });
  homes.push(home);
  const store = () => openStore(createContext({ io: testIO(), env: home.env }), 'file');
  await storeSession(await store(), broker, people.alice);
  return { home, store };
}

/**
 * The code cache of the hot commands (bin/compile-cache.js): compiled code, no store and nothing
 * secret in it, written under `$HOME/.cache/jitctl/` by any hot command.
 */
const CODE_CACHE = '.cache';

/** What is in the code cache under `home`, checked to hold no secret. */
function codeCacheHolds(home: string, secrets: string[]): string[] {
  const dir = join(home, CODE_CACHE, 'jitctl');
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir);
  for (const name of names) {
    const bytes = readFileSync(join(dir, name));
    for (const secret of secrets) expect(bytes.includes(secret)).toBe(false);
  }
  return names;
}

/**
 * Every file and directory under `dir` but the code cache: path, type, size, mode, mtime and
 * content digest.
 */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (p === join(dir, CODE_CACHE)) continue;
      const st = lstatSync(p);
      if (st.isDirectory()) {
        out.set(p, `dir ${st.mode.toString(8)} ${st.mtimeMs}`);
        walk(p);
      } else {
        const digest = createHash('sha256').update(readFileSync(p)).digest('hex');
        out.set(p, `file ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${digest}`);
      }
    }
  };
  walk(dir);
  return out;
}

/** Approves the request a waiting jitctl printed, as lee. */
async function approveWaiting(cli: ReturnType<typeof spawnCli>): Promise<string> {
  const pattern = /waiting for approval of (req_[A-Za-z0-9]+)/;
  await cli.waitForOutput(pattern, 30_000);
  const id = pattern.exec(cli.stderr())![1]!;
  const r = await actor(broker, people.lee).post<AccessRequest>(`/v1/requests/${id}/reviews`, {
    decision: 'approve',
  });
  expect(r.status, r.text).toBe(200);
  return id;
}

const PRINT = [
  '--',
  'sh',
  '-c',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
  'echo "role=$JITCTL_ROLE id=$JITCTL_REQUEST_ID token=${KUBE_TOKEN:+set}${RO_TOKEN:+set}"',
];

describe('jitctl exec --request', () => {
  it('files, waits for the approval, runs the command with the new credential and keeps it', async () => {
    const { home, store } = await aliceHome();
    const cli = spawnCli(
      [
        'exec',
        'prod-deploy',
        '--request',
        '--for',
        '10m',
        '--reason',
        'hotfix',
        '--ticket',
        'INC-1',
        ...PRINT,
      ],
      { env: home.env },
    );
    const id = await approveWaiting(cli);
    const r = await cli.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`role=prod-deploy id=${id} token=set\n`);
    expect(r.stderr).toContain('no active credential for prod-deploy; requesting one');
    expect(r.stderr).toContain(`filed ${id} for prod-deploy (10m)`);
    expect(r.stderr).toMatch(/✔ approved by Lee · credential valid until \d\d:\d\d \(10m\)/);
    const kept = decodeCredential(
      await (await store()).get(credentialKey(broker.url, 'prod-deploy')),
    );
    expect(kept?.requestId).toBe(id);
    expect(r.stdout + r.stderr).not.toContain(kept!.token.reveal());
    const filed = await actor(broker, people.lee).get<AccessRequest>(`/v1/requests/${id}`);
    expect(filed.body).toMatchObject({ reason: 'hotfix', ticket: 'INC-1', duration: '10m' });

    // The next exec, --request or not, uses the kept credential and files nothing.
    const again = await runCli(['exec', 'prod-deploy', '--request', '--reason', 'x', ...PRINT], {
      env: home.env,
    });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(`role=prod-deploy id=${id} token=set\n`);
    expect(again.stderr).toBe('');
    const mine = await actor(broker, people.alice).get<RequestPage>('/v1/requests?mine=true');
    expect(mine.body.items.filter((x) => x.role === 'prod-deploy' && x.reason === 'x')).toEqual([]);
  });

  it('a denial is exit 3 and the command never starts', async () => {
    const { home } = await aliceHome();
    const marker = join(home.dir, 'ran');
    const cli = spawnCli(
      ['exec', 'prod-deploy', '--request', '--reason', 'x', '--', 'sh', '-c', `touch ${marker}`],
      { env: home.env },
    );
    const pattern = /waiting for approval of (req_[A-Za-z0-9]+)/;
    await cli.waitForOutput(pattern, 30_000);
    const id = pattern.exec(cli.stderr())![1]!;
    await actor(broker, people.lee).post(`/v1/requests/${id}/reviews`, {
      decision: 'deny',
      comment: 'not now',
    });
    const r = await cli.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${id} (prod-deploy) was denied by Lee`);
    expect(existsSync(marker)).toBe(false);
  });

  it('Ctrl-C while waiting: exit 130, the request stays filed, and how to resume', async () => {
    const { home } = await aliceHome();
    const cli = spawnCli(['exec', 'prod-deploy', '--request', '--reason', 'x', ...PRINT], {
      env: home.env,
    });
    const pattern = /waiting for approval of (req_[A-Za-z0-9]+)/;
    await cli.waitForOutput(pattern, 30_000);
    const id = pattern.exec(cli.stderr())![1]!;
    cli.child.kill('SIGINT');
    const r = await cli.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`stopped waiting; ${id} is still filed`);
    expect(r.stderr).toContain(`jitctl wait ${id}`);
    const still = await actor(broker, people.lee).get<AccessRequest>(`/v1/requests/${id}`);
    expect(still.body.state).toBe('pending');
  });

  it('bad input is refused before anything is filed', async () => {
    const { home } = await aliceHome();
    const before = (await actor(broker, people.alice).get<RequestPage>('/v1/requests?mine=true'))
      .body.items.length;
    const bad = await runCli(['exec', 'prod-deploy', '--request', '--for', '15x', ...PRINT], {
      env: home.env,
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('`--for 15x`: durations look like');
    const noRole = await runCli(['exec', '--request', ...PRINT], { env: home.env });
    expect(noRole.code).toBe(2);
    expect(noRole.stderr).toBe(
      'error: --request needs the role to ask for\nhint: name it: jitctl exec prod-deploy --request --for 15m --reason "…" -- <command>\n',
    );
    const long = await runCli(
      ['exec', 'prod-deploy', '--request', '--for', '2h', '--reason', 'x', ...PRINT],
      {
        env: home.env,
      },
    );
    expect(long.code).toBe(2);
    expect(long.stderr).toContain('longer than the maximum of 1h');
    const after = (await actor(broker, people.alice).get<RequestPage>('/v1/requests?mine=true'))
      .body.items.length;
    expect(after).toBe(before);
  });
});

describe('--no-store', () => {
  it('with the file store: the command gets the credential, and no file under the home changes', async () => {
    const { home, store } = await aliceHome();
    const before = snapshot(home.dir);
    expect(before.size).toBeGreaterThan(2);
    const cli = spawnCli(
      ['exec', 'prod-deploy', '--request', '--no-store', '--reason', 'x', ...PRINT],
      {
        env: home.env,
      },
    );
    const id = await approveWaiting(cli);
    const r = await cli.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`role=prod-deploy id=${id} token=set\n`);
    expect(snapshot(home.dir)).toEqual(before);
    expect(await (await store()).list(`${broker.url}|credential|`)).toEqual([]);
    expect(r.stderr).not.toContain('use it: jitctl exec');
  });

  it('shell --request --no-store: the same for a subshell', async () => {
    const { home } = await aliceHome();
    const before = snapshot(home.dir);
    const cli = spawnCli(
      ['shell', 'self-service', '--request', '--no-store', '--shell', '/bin/sh'],
      {
        env: home.env,
        input: 'echo "in $JITCTL_ROLE"; exit 7\n',
      },
    );
    const r = await cli.done;
    expect(r.code, r.stderr).toBe(7);
    expect(r.stdout).toBe('in self-service\n');
    expect(r.stderr).toContain('approved (no review needed)');
    expect(snapshot(home.dir)).toEqual(before);
  });

  it.runIf(keyringAvailable())(
    'with the OS keychain: no keychain entry appears and no file is written',
    async () => {
      const keyring: PrivateKeyring = await startKeyring();
      const saved = process.env.DBUS_SESSION_BUS_ADDRESS;
      // @napi-rs/keyring reads the bus address from this process's environment.
      process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
      try {
        const home = testHome({
          JITCTL_SERVER: broker.url,
          JITCTL_STORE: 'keychain',
          ...keyring.env,
        });
        homes.push(home);
        const keychain = await openStore(
          createContext({ io: testIO(), env: home.env }),
          'keychain',
        );
        await storeSession(keychain, broker, people.alice);
        const entries = await keychain.list();
        expect(entries).toEqual([sessionKey(broker.url)]);
        const files = snapshot(home.dir);
        const cli = spawnCli(
          ['exec', 'prod-deploy', '--request', '--no-store', '--reason', 'x', ...PRINT],
          {
            env: home.env,
          },
        );
        const id = await approveWaiting(cli);
        const r = await cli.done;
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(`role=prod-deploy id=${id} token=set\n`);
        expect(await keychain.list()).toEqual(entries);
        expect(snapshot(home.dir)).toEqual(files);

        // Without --no-store the same flow keeps the credential in the keychain.
        const kept = spawnCli(['exec', 'prod-deploy', '--request', '--reason', 'x', ...PRINT], {
          env: home.env,
        });
        await approveWaiting(kept);
        expect((await kept.done).code).toBe(0);
        expect((await keychain.list()).sort()).toEqual(
          [sessionKey(broker.url), credentialKey(broker.url, 'prod-deploy')].sort(),
        );
      } finally {
        if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
        else process.env.DBUS_SESSION_BUS_ADDRESS = saved;
        await keyring.stop();
      }
    },
  );

  it('with JITCTL_FEDERATED_TOKEN: one process signs in, requests and runs, touching no store at all', async () => {
    // No JITCTL_STORE and no D-Bus: the default keychain would fail if anything opened it.
    const home = testHome({ JITCTL_SERVER: broker.url, CI: 'true' });
    homes.push(home);
    const token = await ci.token(
      { sub: 'repo:acme/app', acr: null, auth_time: null },
      { aud: AUD, extra: { repository: 'acme/app' } },
    );
    const r = await runCli(['exec', 'self-service', '--request', '--no-store', ...PRINT], {
      env: { ...home.env, JITCTL_FEDERATED_TOKEN: token },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^role=self-service id=req_\w+ token=set\n$/);
    expect(r.stderr).toContain('approved (no review needed)');
    expect(readdirSync(home.dir).filter((n) => n !== CODE_CACHE)).toEqual([]);
    for (const name of codeCacheHolds(home.dir, [token])) expect(name).toMatch(/^v8-exec-/);
    expect(r.stderr).not.toContain(token);
    // The child does not inherit the pipeline's token (every JITCTL_* variable is jitctl's own).
    const env = await runCli(
      [
        'exec',
        'self-service',
        '--request',
        '--no-store',
        '--',
        'sh',
        '-c',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
        'echo "${JITCTL_FEDERATED_TOKEN:-unset}"',
      ],
      {
        env: { ...home.env, JITCTL_FEDERATED_TOKEN: token },
      },
    );
    expect(env.stdout).toBe('unset\n');
    // Without --no-store the credential must go somewhere: the keychain's own error says so.
    const stored = await runCli(['exec', 'self-service', '--request', ...PRINT], {
      env: { ...home.env, JITCTL_FEDERATED_TOKEN: token },
    });
    expect(stored.code).toBe(1);
    expect(stored.stderr).toContain('keychain');
  });
});
