import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession } from '../../src/auth/index.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { BrokerClient } from '../../src/client/broker-client.js';
import { openStore } from '../../src/credentials/index.js';
import { decodeSession, encodeSession, sessionKey } from '../../src/credentials/records.js';
import { currentTotp, DEV_USERS } from '../../src/server/dev/index.js';
import { chromiumAvailable, launchChromium, urlCatcher } from '../support/chromium.js';
import { runCli, type SpawnedCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';

/**
 * The newcomer's story with real processes only: `jitctl server --dev` in one terminal,
 * `jitctl login` in another (device code as alice, the browser in Chromium as lee), `jitctl
 * status` shows who signed in. Then the broker restarts on its data directory and the sessions
 * keep working: its provider's keys and refresh tokens persisted.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const lee = DEV_USERS.find((u) => u.username === 'lee')!;
let dataDir: string;
let port: number;
let server: SpawnedCli;
let url: string;
const homes: TestHome[] = [];
const serverOutput: string[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function startServer(): Promise<void> {
  const env = testHome();
  homes.push(env);
  server = spawnCli(['server', '--dev', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: { ...env.env, JITCTL_DEV_IDP_INTERVAL: '1', JITCTL_SERVER_LOG_LEVEL: 'debug' },
  });
  await server.waitForOutput(/jitctl login --server http:\/\/\S+/, 30_000);
  url = /jitctl login --server (http:\/\/\S+)/.exec(server.stderr())![1]!;
}

async function stopServer(): Promise<void> {
  server.child.kill('SIGTERM');
  const r = await server.done;
  serverOutput.push(r.stdout, r.stderr);
  expect(r.code).toBe(0);
}

function home(): TestHome {
  const h = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  homes.push(h);
  return h;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'jitctl-dev-'));
  port = await freePort();
  await startServer();
});
afterAll(async () => {
  if (server && server.child.exitCode === null) await stopServer().catch(() => {});
  for (const h of homes) h.cleanup();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const aliceHome = home();
const leeHome = home();

describe('jitctl server --dev, then jitctl login', () => {
  it('the banner says how to sign in; alice signs in with the device code', async () => {
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(server.stderr()).toContain('alice');
    // prod-deploy asks for mfa, so the one sign-in of login asks for it too (the broker's
    // sign_in_acr_values): a password alone is refused at the sign-in page, and the first
    // `jitctl request` needs no second sign-in.
    const first = spawnCli(['login', '--server', url], { env: aliceHome.env });
    await first.waitForOutput(/user_code=/);
    await expect(
      completeDeviceLogin(deviceLoginUrl(first.stderr())!, alice, { mfa: false }),
    ).rejects.toThrow(/one-time code/);
    first.child.kill('SIGINT');
    expect((await first.done).code).toBe(130);
    const cli = spawnCli(['login', '--server', url], { env: aliceHome.env });
    await cli.waitForOutput(/user_code=/);
    await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: true });
    const r = await cli.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `Signed in to ${url} as alice (alice@example.com); groups: developers`,
    );

    const status = await runCli(['status'], { env: aliceHome.env });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('Signed in:   alice (alice@example.com)');
    expect(status.stdout).toContain('Groups:      developers');
  });

  it('lee signs in through the browser (Chromium) with his one-time code', async () => {
    if (!chromiumAvailable()) throw new Error('Chromium is needed: apt-get install chromium');
    const catcher = urlCatcher(leeHome.dir);
    const env = { ...leeHome.env, BROWSER: catcher.command };
    const cli = spawnCli(['login', '--server', url], { env });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(await catcher.next());
      await page.getByLabel('Username').fill('lee');
      await page.getByLabel('Password').fill(lee.password);
      await page.getByLabel(/One-time code/).fill(currentTotp(lee));
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect.poll(() => page.textContent('h1')).toBe('Signed in');
    } finally {
      await browser.close();
    }
    expect((await cli.done).code).toBe(0);
    const doc = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(doc.session).toMatchObject({ acr: 'mfa', identity: { sub: 'lee', groups: ['leads'] } });
  });

  it('after a restart the broker still accepts the sessions, and refresh still works', async () => {
    await stopServer();
    await startServer();
    expect(url).toBe(`http://127.0.0.1:${port}`);

    const ctx = createContext({ io: testIO(), env: { ...aliceHome.env } });
    const store = await openStore(ctx, 'file');
    const before = decodeSession(await store.get(sessionKey(url)))!;
    const client = new BrokerClient({
      server: url,
      session: await openSession(ctx, url, store),
      clock: ctx.clock,
    });
    expect(await client.me()).toMatchObject({ sub: 'alice', groups: ['developers'] });

    // Make the token due for refresh: the refresh token issued before the restart must work.
    await store.set(sessionKey(url), encodeSession({ ...before, expiresAt: Date.now() + 30_000 }));
    const fresh = new BrokerClient({
      server: url,
      session: await openSession(ctx, url, store),
      clock: ctx.clock,
    });
    expect(await fresh.me()).toMatchObject({ sub: 'alice' });
    const after = decodeSession(await store.get(sessionKey(url)))!;
    expect(after.bearer.reveal()).not.toBe(before.bearer.reveal());
    await client.close();
    await fresh.close();
  });

  it("the broker's output holds no token", async () => {
    await stopServer();
    const tokens: string[] = [];
    for (const h of [aliceHome, leeHome]) {
      const store = await openStore(createContext({ io: testIO(), env: { ...h.env } }), 'file');
      const s = decodeSession(await store.get(sessionKey(url)))!;
      tokens.push(s.bearer.reveal(), s.refreshToken!.reveal(), s.bearer.reveal().split('.')[2]!);
    }
    const all = serverOutput.join('\n');
    expect(all).toContain('"msg"');
    for (const t of tokens) expect(all.includes(t)).toBe(false);
  });
});
