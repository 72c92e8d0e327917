import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTotp, DEV_USERS } from '../../src/server/dev/index.js';
import { type StandInBroker, startStandInBroker } from '../auth/stand-in-broker.js';
import {
  chromiumAvailable,
  launchChromium,
  type UrlCatcher,
  urlCatcher,
} from '../support/chromium.js';
import { runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { authorizationUrl, completeAuthorizationRequest } from '../support/dev-browser.js';

/**
 * `jitctl login` through the loopback browser flow (RFC 8252), driven in real headless Chromium:
 * jitctl opens "the browser" through $BROWSER, which hands the URL to the test; Chromium signs in
 * at the development identity provider and is redirected to jitctl's one-shot 127.0.0.1 listener.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const lee = DEV_USERS.find((u) => u.username === 'lee')!;
let broker: StandInBroker;
let browser: Browser;
let scratch: string;

beforeAll(async () => {
  if (!chromiumAvailable()) throw new Error('Chromium is needed: apt-get install chromium');
  broker = await startStandInBroker();
  browser = await launchChromium();
  scratch = mkdtempSync(join(tmpdir(), 'jitctl-browser-'));
});
afterAll(async () => {
  await browser?.close();
  await broker?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function home(): { home: TestHome; catcher: UrlCatcher } {
  const h = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  const catcher = urlCatcher(h.dir);
  h.env.BROWSER = catcher.command;
  return { home: h, catcher };
}

async function signInOnPage(page: Page, who: typeof alice, mfa: boolean) {
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  if (mfa) await page.getByLabel(/One-time code/).fill(currentTotp(who));
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe('jitctl login --browser (Chromium)', () => {
  it('signs in through the browser with MFA and stores the session', async () => {
    const { home: h, catcher } = home();
    const context = await browser.newContext();
    try {
      const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
      const url = await catcher.next();
      const auth = new URL(url);
      expect(auth.origin + auth.pathname).toBe(`${broker.idp.issuer}/auth`);
      expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
      expect(auth.searchParams.get('redirect_uri')).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/callback$/,
      );
      expect(auth.searchParams.get('state')).toBeTruthy();
      expect(auth.searchParams.get('nonce')).toBeTruthy();

      const page = await context.newPage();
      await page.goto(url);
      await signInOnPage(page, alice, true);
      await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback/);
      await expect.poll(() => page.textContent('body')).toContain('return to the terminal');
      expect(await page.textContent('h1')).toBe('Signed in');

      const r = await cli.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(
        `Signed in to ${broker.url} as alice (alice@example.com); groups: developers`,
      );
      const status = await runCli(['status', '--json'], { env: h.env });
      expect(status.code).toBe(0);
      const doc = JSON.parse(status.stdout);
      expect(doc.session.acr).toBe('mfa');
      expect(doc.session.identity.sub).toBe('alice');

      // Exactly one callback: the listener is gone once the answer arrived.
      const callback = new URL(page.url());
      await expect(request(`${callback.origin}/callback?code=x&state=y`)).rejects.toThrow();
    } finally {
      await context.close();
      h.cleanup();
    }
  });

  it('reuses the browser session at the provider: a second login needs no form', async () => {
    const { home: h, catcher } = home();
    const context = await browser.newContext();
    try {
      const first = spawnCli(['login', '--server', broker.url], { env: h.env });
      const page = await context.newPage();
      await page.goto(await catcher.next());
      await signInOnPage(page, lee, false);
      expect((await first.done).code).toBe(0);

      const second = spawnCli(['login', '--server', broker.url], { env: h.env });
      await page.goto(await catcher.next());
      await expect.poll(() => page.textContent('h1')).toBe('Signed in');
      const r = await second.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('as lee (lee@example.com); groups: leads');
    } finally {
      await context.close();
      h.cleanup();
    }
  });

  it('aborts on a callback with the wrong state: exit 4, nothing stored', async () => {
    const { home: h, catcher } = home();
    const context = await browser.newContext();
    try {
      const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
      const url = new URL(await catcher.next());
      // A forged sign-in: the provider echoes whatever state the request carried, so the answer
      // that reaches jitctl is not the one of the sign-in it started (RFC 6749 §10.12).
      url.searchParams.set('state', 'forged-state');
      const page = await context.newPage();
      await page.goto(url.href);
      await signInOnPage(page, alice, false);
      await expect.poll(() => page.textContent('h1')).toBe('Sign-in failed');
      expect(await page.textContent('body')).toContain('state mismatch');

      const r = await cli.done;
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('state mismatch');
      expect(r.stderr).toContain('nothing was stored');
      expect(r.stderr).not.toContain('Signed in to');
      const status = await runCli(['status', '--server', broker.url], { env: h.env });
      expect(status.code).toBe(4);
      expect(status.stderr).toContain(`not signed in to ${broker.url}`);
    } finally {
      await context.close();
      h.cleanup();
    }
  });

  it('aborts on a callback that names another issuer (RFC 9207 mix-up defence)', async () => {
    const { home: h, catcher } = home();
    try {
      const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
      const url = await catcher.next();
      // Browsers cannot rewrite a redirect; the HTTP person can (test/support/dev-browser.ts).
      const page = await completeAuthorizationRequest(url, alice, {
        mfa: false,
        rewriteCallback: (callback) => {
          expect(callback.searchParams.get('iss')).toBe(broker.idp.issuer);
          callback.searchParams.set('iss', 'https://evil.example.com');
          return callback;
        },
      });
      expect(page.status).toBe(400);
      const r = await cli.done;
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('iss mismatch');
      expect((await runCli(['status', '--server', broker.url], { env: h.env })).code).toBe(4);
    } finally {
      h.cleanup();
    }
  });

  it('ends with exit 4 when the person presses Cancel', async () => {
    const { home: h, catcher } = home();
    const context = await browser.newContext();
    try {
      const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
      const page = await context.newPage();
      await page.goto(await catcher.next());
      await page.getByRole('button', { name: 'Cancel' }).click();
      await expect.poll(() => page.textContent('h1')).toBe('Sign-in failed');
      const r = await cli.done;
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('refused or cancelled');
    } finally {
      await context.close();
      h.cleanup();
    }
  });

  it('gives up after JITCTL_LOGIN_TIMEOUT when no answer comes', async () => {
    const { home: h, catcher } = home();
    try {
      h.env.JITCTL_LOGIN_TIMEOUT = '2s';
      const cli = spawnCli(['login', '--server', broker.url, '--browser'], { env: h.env });
      await catcher.next();
      const r = await cli.done;
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('no answer from the browser within 2s');
    } finally {
      h.cleanup();
    }
  });

  it('with --no-open prints the URL instead of opening a browser', async () => {
    const { home: h, catcher } = home();
    try {
      const cli = spawnCli(['login', '--server', broker.url, '--browser', '--no-open'], {
        env: h.env,
      });
      await cli.waitForOutput('/auth?');
      const url = authorizationUrl(cli.stderr());
      expect(url).toBeDefined();
      await expect(catcher.next(500)).rejects.toThrow(/no URL was opened/);
      const page = await completeAuthorizationRequest(url!, alice, { mfa: false });
      expect(page.text).toContain('return to the terminal');
      expect((await cli.done).code).toBe(0);
    } finally {
      h.cleanup();
    }
  });
});
