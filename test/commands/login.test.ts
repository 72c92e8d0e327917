import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_USERS } from '../../src/server/dev/index.js';
import { type StandInBroker, startStandInBroker } from '../auth/stand-in-broker.js';
import { runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl, PageError } from '../support/dev-browser.js';

/**
 * `jitctl login` with the device flow (the automatic choice here: no display, no $BROWSER), the
 * spawned binary against the real development identity provider; the test plays the person over
 * HTTP with test/support/dev-browser.ts.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const ada = DEV_USERS.find((u) => u.username === 'ada')!;
let broker: StandInBroker;
const homes: TestHome[] = [];

beforeAll(async () => {
  broker = await startStandInBroker({ devicePollInterval: 1 });
});
afterAll(async () => {
  for (const h of homes) h.cleanup();
  await broker?.stop();
});

function home(extra: Record<string, string> = {}): TestHome {
  const h = testHome({
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: 'correct horse battery',
    ...extra,
  });
  homes.push(h);
  return h;
}

async function deviceLogin(
  h: TestHome,
  who: typeof alice,
  opts: { mfa: boolean; args?: string[] },
) {
  const cli = spawnCli(['login', '--server', broker.url, ...(opts.args ?? [])], { env: h.env });
  await cli.waitForOutput(/user_code=/);
  const url = deviceLoginUrl(cli.stderr());
  expect(url).toBeDefined();
  await completeDeviceLogin(url!, who, { mfa: opts.mfa });
  return cli.done;
}

describe('jitctl login (device flow)', () => {
  it('signs alice in with her password: session stored, broker remembered, status shows her', async () => {
    const h = home();
    const r = await deviceLogin(h, alice, { mfa: false });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('open this page in a browser');
    expect(r.stderr).toMatch(/check that it shows the code [A-Z]{4}-[A-Z]{4}/);
    expect(r.stderr).toContain(
      `Signed in to ${broker.url} as alice (alice@example.com); groups: developers`,
    );

    const config = JSON.parse(
      readFileSync(join(h.env.XDG_CONFIG_HOME!, 'jitctl', 'config.json'), 'utf8'),
    );
    expect(config.server).toBe(broker.url);
    expect(statSync(join(h.env.XDG_CONFIG_HOME!, 'jitctl', 'config.json')).mode & 0o777).toBe(
      0o600,
    );

    const status = await runCli(['status', '--json'], { env: h.env });
    expect(status.code).toBe(0);
    const doc = JSON.parse(status.stdout);
    expect(doc).toMatchObject({
      server: broker.url,
      signed_in: true,
      store: { kind: 'file' },
      session: {
        kind: 'oidc',
        issuer: broker.idp.issuer,
        client_id: 'jitctl',
        identity: { sub: 'alice', email: 'alice@example.com', groups: ['developers'] },
        acr: 'pwd',
        expired: false,
        refreshable: true,
      },
      credentials: [],
    });
  });

  it('signs in with MFA when the one-time code is given (acr mfa)', async () => {
    const h = home();
    const r = await deviceLogin(h, ada, { mfa: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('as ada (ada@example.com); groups: auditors');
    const doc = JSON.parse((await runCli(['status', '--json'], { env: h.env })).stdout);
    expect(doc.session.acr).toBe('mfa');
    expect(Date.parse(doc.session.auth_time)).toBeLessThanOrEqual(Date.now());
  });

  it('keeps the device flow when --device is given even with a browser around', async () => {
    const h = home({ BROWSER: 'false' });
    const r = await deviceLogin(h, alice, { mfa: false, args: ['--device', '--no-open'] });
    expect(r.code).toBe(0);
  });

  it('runs the device flow in CI and over SSH', async () => {
    const remote: Record<string, string>[] = [
      { CI: 'true' },
      { SSH_CONNECTION: '10.0.0.1 5555 10.0.0.2 22' },
    ];
    for (const extra of remote) {
      const h = home({ ...extra, BROWSER: 'false' });
      const r = await deviceLogin(h, alice, { mfa: false });
      expect(r.code).toBe(0);
    }
  });

  it('the provider refuses a wrong password or code; Ctrl-C then ends the wait with 130', async () => {
    for (const attempt of [
      {
        who: { ...alice, password: 'wrong' },
        opts: { mfa: false },
        says: /Wrong username or password/,
      },
      { who: alice, opts: { code: '000000' }, says: /one-time code is not valid/ },
    ]) {
      const h = home();
      const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
      await cli.waitForOutput(/user_code=/);
      const url = deviceLoginUrl(cli.stderr())!;
      const refused = completeDeviceLogin(url, attempt.who, attempt.opts);
      await expect(refused).rejects.toThrow(PageError);
      await expect(refused).rejects.toThrow(attempt.says);
      cli.child.kill('SIGINT');
      const r = await cli.done;
      expect(r.code).toBe(130);
      expect(r.stderr).not.toContain('Signed in to');
      expect((await runCli(['status', '--server', broker.url], { env: h.env })).code).toBe(4);
    }
  });
});

describe('jitctl login: bad input', () => {
  it('needs a broker: exit 2 with a hint when none is given or configured', async () => {
    const r = await runCli(['login'], { env: home().env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('which broker?');
    expect(r.stderr).toContain('--server');
  });

  it('refuses a broker URL that is not one, or plain http to another host', async () => {
    const h = home();
    const notUrl = await runCli(['login', '--server', 'jit example'], { env: h.env });
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toContain('is not a URL');
    const http = await runCli(['login', '--server', 'http://jit.example.com'], { env: h.env });
    expect(http.code).toBe(2);
    expect(http.stderr).toContain('refusing plain http');
  });

  it('exits 69 when the broker cannot be reached', async () => {
    const r = await runCli(['login', '--server', 'http://127.0.0.1:9'], { env: home().env });
    expect(r.code).toBe(69);
    expect(r.stderr).toContain('cannot reach the broker');
  });

  it('refuses --device with --browser', async () => {
    const r = await runCli(['login', '--server', broker.url, '--device', '--browser'], {
      env: home().env,
    });
    expect(r.code).toBe(2);
  });

  it('--federated-token with nothing on stdin: a usage error before any broker call (issue #5)', async () => {
    const r = await runCli(['login', '--server', broker.url, '--federated-token', '-'], {
      env: home().env,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: the federated token from stdin is empty');
  });

  it('fails before the sign-in when the store cannot be opened', async () => {
    const h = home({ JITCTL_STORE: 'bogus' });
    const r = await runCli(['login', '--server', broker.url], { env: h.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown credential store');
    expect(r.stderr).not.toContain('user_code');
  });
});
