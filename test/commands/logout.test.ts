import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { oidc } from '../../src/auth/oidc.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import {
  credentialKey,
  decodeSession,
  encodeCredential,
  sessionKey,
} from '../../src/credentials/records.js';
import { DEV_USERS } from '../../src/server/dev/index.js';
import { type StandInBroker, startStandInBroker } from '../auth/stand-in-broker.js';
import { runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';

/**
 * `jitctl logout [--all]`: everything of a broker leaves the store, the refresh token is revoked
 * at the provider (RFC 7009) when it can be, and running it again is harmless.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
let a: StandInBroker;
let b: StandInBroker;
const homes: TestHome[] = [];

beforeAll(async () => {
  a = await startStandInBroker({ devicePollInterval: 1 });
  b = await startStandInBroker({ devicePollInterval: 1 });
});
afterAll(async () => {
  for (const h of homes) h.cleanup();
  await a?.stop();
  await b?.stop();
});

function home(): TestHome {
  const h = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  homes.push(h);
  return h;
}

async function login(h: TestHome, broker: StandInBroker) {
  const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
  await cli.waitForOutput(/user_code=/);
  await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: false });
  expect((await cli.done).code).toBe(0);
}

async function store(h: TestHome) {
  return openStore(createContext({ io: testIO(), env: { ...h.env } }), 'file');
}

async function addCredential(h: TestHome, server: string, role: string) {
  const s = await store(h);
  await s.set(
    credentialKey(server, role),
    encodeCredential({
      role,
      requestId: `req_${role}`,
      token: new Secret(`credential-token-for-${role}-0123456789`),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
      env: { KUBE_TOKEN: new Secret(`credential-token-for-${role}-0123456789`) },
    }),
  );
}

describe('jitctl logout', () => {
  it('removes the session and credentials, revokes the refresh token, and is idempotent', async () => {
    const h = home();
    await login(h, a);
    await addCredential(h, a.url, 'prod-deploy');
    await addCredential(h, a.url, 'db-read');
    const session = decodeSession(await (await store(h)).get(sessionKey(a.url)))!;
    const refresh = session.refreshToken!.reveal();

    const first = await runCli(['logout'], { env: h.env });
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(
      `Signed out of ${a.url} (removed the session and 2 credentials)`,
    );
    expect(first.stderr).not.toContain('could not revoke');
    expect(a.events).toContainEqual({ type: 'grant_revoked' });
    expect(await (await store(h)).list(`${a.url}|`)).toEqual([]);

    // The provider no longer honours the refresh token.
    const config = await oidc.discovery(new URL(a.idp.issuer), 'jitctl', undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    await expect(oidc.refreshTokenGrant(config, refresh)).rejects.toMatchObject({
      error: 'invalid_grant',
    });

    const again = await runCli(['logout'], { env: h.env });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`Not signed in to ${a.url}; nothing to do.`);

    const status = await runCli(['status'], { env: h.env });
    expect(status.code).toBe(4);
  });

  it('still signs out when the identity provider cannot be reached, with a warning', async () => {
    const h = home();
    const c = await startStandInBroker({ devicePollInterval: 1 });
    await login(h, c);
    await c.stop();
    const r = await runCli(['logout', '--server', c.url], { env: h.env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`Signed out of ${c.url}`);
    expect(r.stderr).toContain('could not revoke the refresh token');
    expect(r.stderr).toContain('cannot reach the identity provider');
    expect(await (await store(h)).list()).toEqual([]);
  });

  it('--all signs out of every broker; other servers are untouched without it', async () => {
    const h = home();
    await login(h, a);
    await login(h, b);
    await addCredential(h, b.url, 'staging-admin');

    const one = await runCli(['logout', '--server', a.url], { env: h.env });
    expect(one.code).toBe(0);
    const left = await (await store(h)).list();
    expect(left.sort()).toEqual([credentialKey(b.url, 'staging-admin'), sessionKey(b.url)].sort());

    await login(h, a);
    const all = await runCli(['logout', '--all'], { env: h.env });
    expect(all.code).toBe(0);
    expect(all.stderr).toContain(`Signed out of ${a.url}`);
    expect(all.stderr).toContain(`Signed out of ${b.url} (removed the session and 1 credential)`);
    expect(await (await store(h)).list()).toEqual([]);

    const none = await runCli(['logout', '--all'], { env: h.env });
    expect(none.code).toBe(0);
    expect(none.stderr).toContain('Not signed in to any broker; nothing to do.');
  });

  it('with nothing configured there is nothing to do', async () => {
    const r = await runCli(['logout'], { env: home().env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('nothing to do');
  });

  it('refuses a malformed --server (exit 2)', async () => {
    const r = await runCli(['logout', '--server', 'not a url'], { env: home().env });
    expect(r.code).toBe(2);
  });
});
