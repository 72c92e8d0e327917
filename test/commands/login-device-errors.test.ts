import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEV_USERS } from '../../src/server/dev/index.js';
import { type StandInBroker, startStandInBroker } from '../auth/stand-in-broker.js';
import { urlCatcher } from '../support/chromium.js';
import { runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';

/**
 * How a device sign-in ends when it does not succeed, and how jitctl paces its polling
 * (RFC 8628 §3.4, §3.5): the provider's interval, slow_down, access_denied, expired_token, and a
 * provider that points people at another site.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const homes: TestHome[] = [];
const brokers: StandInBroker[] = [];

function home(): TestHome {
  const h = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  homes.push(h);
  return h;
}
async function broker(opts: Parameters<typeof startStandInBroker>[0]): Promise<StandInBroker> {
  const b = await startStandInBroker(opts);
  brokers.push(b);
  return b;
}
afterEach(() => {
  for (const h of homes.splice(0)) h.cleanup();
});
afterAll(async () => {
  for (const b of brokers) await b.stop();
});

const polls = (b: StandInBroker) =>
  b.timeline.filter(
    (t) =>
      t.event.type === 'device_poll' ||
      (t.event.type === 'token' && t.event.grantType.endsWith('device_code')),
  );

describe('device flow pacing', () => {
  it("polls at the provider's interval and never gets slow_down", async () => {
    const b = await broker({ devicePollInterval: 1 });
    const h = home();
    const cli = spawnCli(['login', '--server', b.url], { env: h.env });
    await cli.waitForOutput(/user_code=/);
    // Let it poll a few times before the person finishes.
    await expect.poll(() => polls(b).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: false });
    expect((await cli.done).code).toBe(0);

    const times = polls(b).map((t) => t.at);
    const issued = b.timeline.find((t) => t.event.type === 'device_authorization')!.at;
    const gaps = [times[0]! - issued, ...times.slice(1).map((t, i) => t - times[i]!)];
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(900);
    expect(b.events.some((e) => e.type === 'device_poll' && e.outcome === 'slow_down')).toBe(false);
  });

  it('backs off by 5 s after slow_down (RFC 8628 §3.5)', async () => {
    // Advertises 1 s but throttles below 3 s, like a loaded provider.
    const b = await broker({ devicePollInterval: 1, deviceMinimumInterval: 3 });
    const h = home();
    const cli = spawnCli(['login', '--server', b.url], { env: h.env });
    await cli.waitForOutput(/user_code=/);
    await expect
      .poll(() => polls(b).length, { timeout: 20_000, interval: 200 })
      .toBeGreaterThanOrEqual(2);
    await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: false });
    expect((await cli.done).code).toBe(0);

    const seen = polls(b);
    const slow = seen.findIndex(
      (t) => t.event.type === 'device_poll' && t.event.outcome === 'slow_down',
    );
    expect(slow).toBe(0);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    // interval 1 s + 5 s after the slow_down.
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(5_500);
    expect(
      seen.filter((t) => t.event.type === 'device_poll' && t.event.outcome === 'slow_down'),
    ).toHaveLength(1);
  }, 40_000);
});

describe('device flow endings', () => {
  it('access_denied when the person cancels at the code confirmation: exit 4', async () => {
    const b = await broker({ devicePollInterval: 1 });
    const h = home();
    const cli = spawnCli(['login', '--server', b.url], { env: h.env });
    await cli.waitForOutput(/user_code=/);
    const page = await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, {
      cancelAt: 'confirm',
    });
    expect(page.text).toContain('Sign-in cancelled');
    const r = await cli.done;
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      'error: the sign-in was refused or cancelled at the identity provider',
    );
    expect((await runCli(['status', '--server', b.url], { env: h.env })).code).toBe(4);
  });

  it('access_denied when the person cancels at the sign-in form: exit 4', async () => {
    const b = await broker({ devicePollInterval: 1 });
    const h = home();
    const cli = spawnCli(['login', '--server', b.url], { env: h.env });
    await cli.waitForOutput(/user_code=/);
    await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { cancelAt: 'login' });
    const r = await cli.done;
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('refused or cancelled');
    expect(r.stderr).toContain('the person cancelled the sign-in');
  });

  it('expired_token when nobody signs in before the code expires: exit 4', async () => {
    const b = await broker({ devicePollInterval: 1, ttl: { deviceCode: 3 } });
    const h = home();
    const r = await runCli(['login', '--server', b.url], { env: h.env });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('error: the sign-in code expired before the sign-in was completed');
    expect(r.stderr).toContain('hint: run the command again');
    expect(b.events).toContainEqual({
      type: 'token_error',
      grantType: 'urn:ietf:params:oauth:grant-type:device_code',
      error: 'expired_token',
    });
  });

  it('a code that expired cannot be used by the person afterwards', async () => {
    const b = await broker({ devicePollInterval: 1, ttl: { deviceCode: 2 } });
    const h = home();
    const cli = spawnCli(['login', '--server', b.url], { env: h.env });
    await cli.waitForOutput(/user_code=/);
    const url = deviceLoginUrl(cli.stderr())!;
    expect((await cli.done).code).toBe(4);
    await expect(completeDeviceLogin(url, alice, { mfa: false })).rejects.toThrow(
      /not valid|expired/,
    );
  });
});

describe('a provider that sends people elsewhere', () => {
  let fake: Server;
  afterAll(() => new Promise<void>((r) => (fake ? fake.close(() => r()) : r())));

  it('refuses a verification_uri on another origin and shows nothing of it', async () => {
    fake = createServer((req, res) => {
      const base = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      const issuer = `${base}/op`;
      const send = (body: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const path = (req.url ?? '').split('?')[0];
      if (path === '/v1/config') {
        return send({
          issuer,
          client_id: 'jitctl',
          scopes: ['openid'],
          device_flow: true,
          version: 'x',
        });
      }
      if (path === '/op/.well-known/openid-configuration') {
        return send({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          device_authorization_endpoint: `${issuer}/device/auth`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        });
      }
      if (path === '/op/device/auth') {
        return send({
          device_code: 'dc',
          user_code: 'PHISH-CODE',
          verification_uri: 'https://evil.example.net/device',
          verification_uri_complete: 'https://evil.example.net/device?user_code=PHISH-CODE',
          expires_in: 60,
          interval: 1,
        });
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const h = home();
    const catcher = urlCatcher(h.dir);
    h.env.BROWSER = catcher.command;
    const r = await runCli(['login', '--server', url, '--device'], { env: h.env });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('sent a sign-in page on another site; refusing to show or open it');
    expect(r.stderr + r.stdout).not.toMatch(/evil|PHISH/i);
    await expect(catcher.next(300)).rejects.toThrow(/no URL was opened/);
  });
});
