/// <reference lib="dom" />
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTotp, type DevUser } from '../../../src/server/dev/index.js';
import { chromiumAvailable, launchChromium } from '../../support/chromium.js';
import { runCli, spawnCli, type TestHome, testHome } from '../../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../../support/dev-browser.js';
import { devUser, KIM, type PagesBroker, startPagesBroker, stateOf } from '../../support/pages.js';

/**
 * The review pages in real headless Chromium, with the real CLI: alice files with `jitctl
 * request`, which prints the page's link; lee opens it on a phone-sized screen, signs in with his
 * password, is sent back for his one-time code when he presses Approve, confirms (by keyboard),
 * and alice's waiting command wakes with the credential. Then a denial with a comment, a second
 * lead on a two-approval role, a self-review, a cross-site form, a framing page, markup in a
 * reason and an expired session. One browser for the file; a context per person.
 *
 * JITCTL_UPDATE_SCREENSHOTS=1 writes docs/images/review-page.png (the page at 375 px).
 */

const lee = devUser('lee');
const alice = devUser('alice');
const PHONE = { width: 375, height: 812 };

let b: PagesBroker;
let browser: Browser;
let aliceHome: TestHome;
let attacker: Server;
let attackerUrl: string;
let leeContext: BrowserContext;
let leePage: Page;

beforeAll(async () => {
  if (!chromiumAvailable()) throw new Error('Chromium is needed: apt-get install chromium');
  b = await startPagesBroker();
  browser = await launchChromium();
  aliceHome = testHome({
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: 'alice passphrase for the pages tests',
    JITCTL_SERVER: b.url,
  });
  const login = spawnCli(['login', '--server', b.url], { env: aliceHome.env });
  await login.waitForOutput(/user_code=/);
  await completeDeviceLogin(deviceLoginUrl(login.stderr())!, alice, { mfa: true });
  expect((await login.done).code).toBe(0);
  // Another site (localhost is another site than 127.0.0.1): a form that posts itself to the
  // broker, and a page that frames the broker's page.
  attacker = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://localhost');
    const target = `${b.url}/ui/requests/${encodeURIComponent(u.searchParams.get('id') ?? '')}`;
    const body =
      u.pathname === '/post'
        ? `<form method="post" action="${target}/review"><input name="decision" value="approve"><input name="fingerprint" value="${u.searchParams.get('fp')}"><input name="comment" value="sure"></form><script>document.forms[0].submit()</script>`
        : `<h1>Win a prize</h1><iframe id="victim" src="${target}" width="375" height="600"></iframe>`;
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end(`<!DOCTYPE html><html><body>${body}</body></html>`);
  });
  await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()));
  attackerUrl = `http://localhost:${(attacker.address() as AddressInfo).port}`;
  leeContext = await browser.newContext({ viewport: PHONE });
  leePage = await leeContext.newPage();
});

afterAll(async () => {
  await browser?.close();
  attacker?.close();
  await b?.close();
  aliceHome?.cleanup();
});

/** Fills the identity provider's sign-in form. */
async function signInAtIdp(page: Page, who: DevUser, mfa: boolean): Promise<void> {
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  if (mfa) await page.getByLabel(/One-time code/).fill(currentTotp(who));
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const main = (page: Page) => page.locator('main').innerText();

/** Opens `url`, signing in first (with the one-time code) if the broker sends the person off. */
async function open(page: Page, url: string, who: DevUser = lee): Promise<void> {
  await page.goto(url);
  if (new URL(page.url()).pathname.startsWith('/idp/')) {
    await signInAtIdp(page, who, true);
    await page.waitForURL(url);
  }
}

/** alice files with the CLI and waits; resolves with the link it printed. */
async function aliceRequests(args: string[]) {
  const cli = spawnCli(['request', ...args], { env: aliceHome.env });
  await cli.waitForOutput(/review page for the approvers: (\S+)/, 30_000);
  const link = /review page for the approvers: (\S+)/.exec(cli.stderr())![1]!;
  const id = /\/ui\/requests\/(req_\w+)$/.exec(link)![1]!;
  return { cli, link, id };
}

/** alice files with `--no-wait`; returns the id. */
async function aliceFiles(args: string[]): Promise<string> {
  const r = await runCli(['request', ...args, '--no-wait'], { env: aliceHome.env });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe('reviewing in the browser', () => {
  it('lee opens the link, signs in, steps up on Approve, confirms by keyboard; alice gets the credential', async () => {
    const { cli, link, id } = await aliceRequests([
      'prod-deploy',
      '--for',
      '15m',
      '--reason',
      'hotfix INC-4211',
      '--ticket',
      'INC-4211',
    ]);
    expect(link).toBe(`${b.url}/ui/requests/${id}`);
    const visited: string[] = [];
    leeContext.on('request', (r) => visited.push(r.url()));
    const page = leePage;

    await page.goto(link);
    expect(new URL(page.url()).pathname).toMatch(/^\/idp\/interaction\//);
    expect(await page.locator('main').innerText()).toContain(
      'Sign in to continue to jitctl review pages',
    );
    await signInAtIdp(page, lee, false);
    await page.waitForURL(link);

    const text = await main(page);
    expect(await page.locator('h1').innerText()).toBe(`Request ${id}`);
    for (const shown of [
      'Pending. Waiting for approval: 0 of 1 from group:leads',
      'Alice Developer (alice)',
      `identity provider ${b.url}/idp`,
      'prod-deploy',
      'Deploy to production',
      '15m',
      'hotfix INC-4211',
      'INC-4211',
      '0 of 1 needed',
      'none yet',
    ])
      expect(text).toContain(shown);
    // (Labels are upper-cased by the stylesheet, which innerText follows.)
    expect(text).toMatch(/Fingerprint\s+[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}/i);
    expect(text).toMatch(/Filed\s+\d\d:\d\d UTC \(\d+s ago\)/i);
    expect(text).toMatch(/Expires\s+\d\d:\d\d UTC \(in (59m|1h)\)/i);

    // The session cookie: HttpOnly, SameSite=Lax, not Secure on loopback http, no identity in it.
    const session = (await leeContext.cookies()).find((c) => c.name === 'jitctl-session')!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', secure: false, path: '/' });
    expect(session.value).toMatch(/^[\w-]{43}$/);
    // Phone width: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      PHONE.width,
    );
    if (process.env.JITCTL_UPDATE_SCREENSHOTS === '1') {
      await page.screenshot({
        path: join(import.meta.dirname, '../../../docs/images/review-page.png'),
        fullPage: true,
      });
    }

    await page.getByLabel(/^Comment/).fill('ship it');
    await page.getByRole('button', { name: 'Approve', exact: true }).click();
    // Approving needs a fresh MFA sign-in: back to the identity provider, which insists on the code.
    await page.waitForURL(/\/idp\/interaction\//);
    expect(await page.locator('main').innerText()).toContain(
      'jitctl review pages needs a fresh sign-in with your one-time code',
    );
    expect(await stateOf(b, id)).toBe('pending');
    await signInAtIdp(page, lee, true);
    await page.waitForURL(link);
    expect(await main(page)).toContain('Confirm your decision');
    expect(await page.getByLabel(/^Comment/).inputValue()).toBe('ship it');
    // Coming back decided nothing; the person confirms, here by keyboard.
    expect(await stateOf(b, id)).toBe('pending');
    await page.getByLabel(/^Comment/).focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Confirm: approve');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.body.innerText.includes('Approved by Lee Lead'));
    expect(await main(page)).toMatch(
      /Approved\. Approved by Lee Lead at \d\d:\d\d UTC; valid until \d\d:\d\d UTC \(in 15m\)\./,
    );

    const r = await cli.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/approved by Lee Lead · credential valid until \d\d:\d\d \(15m\)/);

    // No code, state or token in any address the browser loaded after the sign-in's answer.
    const callback = visited.findLastIndex((u) => u.includes('/ui/auth/callback'));
    expect(callback).toBeGreaterThan(0);
    const after = visited.slice(callback + 1);
    expect(after.length).toBeGreaterThan(0);
    for (const u of after) expect(u).not.toMatch(/[?&](code|state|id_token|access_token)=|eyJ/);
    expect(page.url()).toBe(link);
  });

  it('lee denies with a comment; alice’s command ends with exit 3 and the comment', async () => {
    const { cli, link } = await aliceRequests(['staging-admin', '--reason', 'db migration']);
    await open(leePage, link);
    await leePage.getByLabel(/^Comment/).fill('not during the freeze');
    await leePage.getByRole('button', { name: 'Deny', exact: true }).click();
    await leePage.waitForFunction(() => document.body.innerText.includes('Denied by Lee Lead'));
    expect(await main(leePage)).toContain('not during the freeze');
    const r = await cli.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('was denied by Lee Lead (Lee Lead: "not during the freeze")');
  });

  it('a two-approval role: lee approves, the page waits for one more; kim approves and alice is in', async () => {
    const { cli, link } = await aliceRequests(['two-person', '--reason', 'schema fix']);
    await open(leePage, link);
    await leePage.getByRole('button', { name: 'Approve', exact: true }).click();
    await leePage.waitForFunction(() => document.body.innerText.includes('You approved'));
    const text = await main(leePage);
    expect(text).toContain('Pending. Waiting for approval: 1 of 2 from group:leads');
    expect(text).toMatch(
      /You approved this request at \d\d:\d\d UTC; it needs 1 more approval from others\./,
    );
    expect(await leePage.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(0);

    const kimContext = await browser.newContext({ viewport: PHONE });
    try {
      const kim = await kimContext.newPage();
      await open(kim, link, KIM);
      await kim.getByRole('button', { name: 'Approve', exact: true }).click();
      await kim.waitForFunction(() => document.body.innerText.includes('Approved by Kim Lead'));
    } finally {
      await kimContext.close();
    }
    const r = await cli.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('approved by Lee Lead, Kim Lead');
  });

  it('refuses alice’s review of her own request, even forged into the page', async () => {
    const id = await aliceFiles(['staging-admin', '--reason', 'my own']);
    const context = await browser.newContext({ viewport: PHONE });
    try {
      const page = await context.newPage();
      await open(page, `${b.url}/ui/requests/${id}`, alice);
      expect(await main(page)).toContain('You filed this request, so you cannot review it');
      expect(await page.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(0);
      // Turn the page's own Withdraw form (with its CSRF token) into an approval and send it.
      const fingerprint = (await page.locator('dd.mono').last().innerText()).trim();
      await page.evaluate((fp) => {
        const form = document.querySelector<HTMLFormElement>('form[action$="/cancel"]')!;
        form.action = form.action.replace(/\/cancel$/, '/review');
        for (const [name, value] of [
          ['decision', 'approve'],
          ['fingerprint', fp],
        ] as const) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.appendChild(input);
        }
        form.submit();
      }, fingerprint);
      await page.waitForFunction(() => document.body.innerText.includes('own request'));
      expect(await main(page)).toContain('you cannot review your own request');
      expect(await stateOf(b, id)).toBe('pending');
    } finally {
      await context.close();
    }
  });

  it('refuses a form posted from another site, and will not render inside its frame', async () => {
    const id = await aliceFiles(['staging-admin', '--reason', 'cross-site']);
    await open(leePage, `${b.url}/ui/requests/${id}`);
    const fingerprint = (await leePage.locator('dd.mono').last().innerText()).trim();
    await leePage.goto(`${attackerUrl}/post?id=${id}&fp=${fingerprint}`);
    await leePage.waitForURL(`${b.url}/ui/requests/${id}/review`);
    expect(await main(leePage)).toContain(
      'This form was sent from another site, so it was refused',
    );
    expect(await stateOf(b, id)).toBe('pending');

    const framed = await leePage.goto(`${attackerUrl}/frame?id=${id}`);
    expect(framed?.status()).toBe(200);
    const frame = leePage.frames().find((f) => f !== leePage.mainFrame())!;
    await frame.waitForLoadState();
    // Chromium replaces a refused frame with its error page: nothing of the broker's page renders.
    expect(frame.url()).toBe('chrome-error://chromewebdata/');
    expect(await frame.content()).not.toContain('Approve');
  });

  it('shows a reason holding markup as text', async () => {
    const reason = '<img src=x onerror=alert(1)> <b>urgent</b>';
    const id = await aliceFiles(['staging-admin', '--reason', reason]);
    let dialogs = 0;
    leePage.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    await open(leePage, `${b.url}/ui/requests/${id}`);
    expect(await main(leePage)).toContain(reason);
    expect(await leePage.locator('main img, main b').count()).toBe(0);
    expect(dialogs).toBe(0);
  });

  it('refuses a decision after the session expired, and asks to sign in again', async () => {
    const id = await aliceFiles(['staging-admin', '--reason', 'late']);
    await open(leePage, `${b.url}/ui/requests/${id}`);
    expect(await main(leePage)).toContain('Approve');
    b.clock.advance(61 * 60_000);
    await leePage.getByRole('button', { name: 'Approve', exact: true }).click();
    await leePage.waitForFunction(() => document.body.innerText.includes('nothing was recorded'));
    expect(await main(leePage)).toContain('Your session has expired, so nothing was recorded');
    expect(await leePage.getByRole('link', { name: 'Sign in again' }).count()).toBe(1);
    expect(await stateOf(b, id)).toBe('pending');
  });
});
