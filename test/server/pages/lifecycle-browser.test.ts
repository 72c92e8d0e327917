/// <reference lib="dom" />
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTotp, type DevUser } from '../../../src/server/dev/index.js';
import { chromiumAvailable, launchChromium } from '../../support/chromium.js';
import {
  callApi,
  devUser,
  fileRequest,
  type PagesBroker,
  SAM,
  startPagesBroker,
  stateOf,
} from '../../support/pages.js';

/**
 * The lifecycle on the review pages in real headless Chromium at phone width, one full decision
 * per kind of request: an extension asked for by alice and approved by lee (step-up, then
 * confirm), a break-glass use acknowledged by lee from his home page (step-up, then confirm), a
 * multi-party role with `require_review_comment` (the browser will not send an empty comment; a
 * lead and then security approve), a request decided by a rule, and a scheduled request approved
 * before its window, which opens later. Its own broker: the last test moves the clock.
 *
 * JITCTL_UPDATE_SCREENSHOTS=1 writes docs/images/extension-review.png (lee's page at 375 px).
 */

const lee = devUser('lee');
const alice = devUser('alice');
const PHONE = { width: 375, height: 812 };

let b: PagesBroker;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  if (!chromiumAvailable()) throw new Error('Chromium is needed: apt-get install chromium');
  b = await startPagesBroker();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await b?.close();
});

/** A fresh phone-sized browser for one person. */
async function phone(): Promise<Page> {
  const context = await browser.newContext({ viewport: PHONE });
  contexts.push(context);
  const page = await context.newPage();
  // Fail at the step that did not happen, well inside the test's own time.
  page.setDefaultTimeout(10_000);
  return page;
}

async function signInAtIdp(page: Page, who: DevUser, mfa: boolean): Promise<void> {
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  if (mfa) await page.getByLabel(/One-time code/).fill(currentTotp(who));
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const main = (page: Page) => page.locator('main').innerText();
const link = (id: string) => `${b.url}/ui/requests/${id}`;

/** Opens `url`, signing in first if the broker sends the person to the identity provider. */
async function open(page: Page, url: string, who: DevUser, mfa: boolean): Promise<void> {
  await page.goto(url);
  if (new URL(page.url()).pathname.startsWith('/idp/')) {
    await signInAtIdp(page, who, mfa);
    await page.waitForURL(url);
  }
}

/** After a click that needs a step-up: the provider insists on the code, then the page is back. */
async function stepUp(page: Page, who: DevUser, back: string): Promise<void> {
  await page.waitForURL(/\/idp\/interaction\//);
  expect(await main(page)).toContain('needs a fresh sign-in with your one-time code');
  await signInAtIdp(page, who, true);
  await page.waitForURL(back);
}

async function waitForText(page: Page, text: string): Promise<void> {
  await page.waitForFunction((t) => document.body.innerText.includes(t), text);
}

async function row(id: string) {
  return b.broker.db.kysely
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

describe('the lifecycle in the browser', () => {
  it('extension: alice asks for 30m more on her phone; lee approves it from home, steps up, confirms; the end moves', async () => {
    const id = await fileRequest(b, alice, { role: 'db-console', reason: 'long migration' });
    const seen = (await callApi(b, lee, 'GET', `/v1/requests/${id}`)).body as {
      fingerprint: string;
    };
    const approved = await callApi(b, lee, 'POST', `/v1/requests/${id}/reviews`, {
      decision: 'approve',
      fingerprint: seen.fingerprint,
    });
    expect(approved.status).toBe(200);
    const endBefore = (await row(id)).expires_at;

    // alice signs in with her code (the role's step-up), so asking needs no second sign-in.
    const a = await phone();
    await open(a, link(id), alice, true);
    expect(await main(a)).toMatch(/Kind\s+New request/i);
    await a.getByLabel(/^How much longer/).fill('30m');
    await a.getByLabel(/^Reason/).fill('the migration is at 80%');
    await a.getByRole('button', { name: 'Ask for more time' }).click();
    await waitForText(a, 'Extension under review');
    const mine = await main(a);
    expect(mine).toMatch(new RegExp(`Kind\\s+Extension of grant ${id}: 30m more asked`, 'i'));
    expect(mine).toContain('You asked for this extension, so you cannot review it');
    expect(await a.getByRole('button', { name: 'Approve extension' }).count()).toBe(0);
    expect((await row(id)).extension_state).toBe('pending');

    // lee, password only, finds it on his home page.
    const l = await phone();
    await open(l, `${b.url}/ui/`, lee, false);
    expect(await main(l)).toContain('Extensions waiting for your review');
    await l
      .locator('section[aria-labelledby="extensions-title"]')
      .getByRole('link', { name: id })
      .click();
    await l.waitForURL(link(id));
    const text = await main(l);
    expect(text).toContain('Alice Developer (alice) asks for 30m more: the grant would end at');
    expect(text).toContain('the migration is at 80%');
    expect(text).toMatch(/0 of 1 approval needed/);
    expect(await l.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      PHONE.width,
    );
    if (process.env.JITCTL_UPDATE_SCREENSHOTS === '1') {
      await l.screenshot({
        path: join(import.meta.dirname, '../../../docs/images/extension-review.png'),
        fullPage: true,
      });
    }
    await l.getByLabel(/^Comment on the extension/).fill('finish it');
    await l.getByRole('button', { name: 'Approve extension' }).click();
    await stepUp(l, lee, link(id));
    expect(await main(l)).toContain('Confirm your decision on the extension');
    expect(await l.getByLabel(/^Comment on the extension/).inputValue()).toBe('finish it');
    expect((await row(id)).extension_state).toBe('pending');
    await l.getByRole('button', { name: 'Confirm: approve' }).click();
    await waitForText(l, 'Extensions so far');
    expect(await main(l)).toMatch(/Extended by 30m by Lee Lead at \d\d:\d\d UTC; until/);
    const after = await row(id);
    expect(after.extension_state).toBe('approved');
    expect(after.expires_at).toBe(endBefore + 30 * 60_000);
    // alice's page says so too, and offers the half hour that is left.
    await a.reload();
    expect(await main(a)).toMatch(/extended by 30m\./);
    expect(await main(a)).toContain('(30m left)');
  });

  it('break-glass: alice takes it at once; lee acknowledges it from home with a comment, steps up, confirms', async () => {
    const id = await fileRequest(b, alice, {
      role: 'prod-emergency',
      reason: 'prod is down',
      break_glass: true,
    });
    expect(await stateOf(b, id)).toBe('approved');
    const l = await phone();
    await open(l, `${b.url}/ui/`, lee, false);
    const banner = l.locator('section[aria-labelledby="bg-list-title"]');
    expect(await banner.innerText()).toContain('break-glass: to review');
    await banner.getByRole('link', { name: id }).click();
    await l.waitForURL(link(id));
    const text = await main(l);
    expect(text).toContain('Break-glass access: to be reviewed');
    expect(text).toMatch(/Kind\s+Break-glass/i);
    expect(text).toMatch(/Taken as break-glass access, without approval, at \d\d:\d\d UTC/);
    expect(text).toMatch(/Approvals\s+none needed: break-glass access is reviewed afterwards/i);
    await l.getByLabel(/^Comment/).fill('called me first');
    await l.getByRole('button', { name: 'Acknowledge', exact: true }).click();
    await stepUp(l, lee, link(id));
    expect(await main(l)).toContain('Confirm your review');
    expect((await row(id)).break_glass_verdict).toBeNull();
    await l.getByRole('button', { name: 'Confirm: acknowledge' }).click();
    await waitForText(l, 'Break-glass access, acknowledged');
    expect(await main(l)).toMatch(/Acknowledged by Lee Lead \(lee\) at \d\d:\d\d UTC/);
    expect(await main(l)).toContain('called me first');
    expect((await row(id)).break_glass_verdict).toBe('acknowledged');
    await l.goto(`${b.url}/ui/`);
    expect(await l.locator('section[aria-labelledby="bg-list-title"]').count()).toBe(0);
  });

  it('multi-party with a required comment: the browser will not send it empty; a lead, then security, approve', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-secrets', reason: 'rotate the key' });
    const l = await phone();
    await open(l, link(id), lee, true);
    const text = await main(l);
    expect(text).toContain(
      'Waiting for approval: 0 of 1 from group:leads, 0 of 1 from group:security',
    );
    expect(text).toContain('Still needed: 1 more from group:leads and 1 more from group:security.');
    expect(text).toMatch(/Who may approve\s+1 from group:leads and 1 from group:security/i);
    expect(text).toContain('Comment (required: role prod-secrets asks approvers to say why');
    // The empty required box stops the form in the browser; nothing reaches the broker.
    await l.getByRole('button', { name: 'Approve', exact: true }).click();
    expect(
      await l
        .locator('#comment')
        .evaluate((el) => (el as HTMLTextAreaElement).validity.valueMissing),
    ).toBe(true);
    expect((await row(id)).review_count).toBe(0);
    await l.getByLabel(/^Comment/).fill('key is due');
    await l.getByRole('button', { name: 'Approve', exact: true }).click();
    await waitForText(l, 'You approved this request');
    expect(await main(l)).toContain('Still needed: 1 more from group:security.');
    expect(await l.locator('li.done').innerText()).toBe('1 of 1 from group:leads ✓');

    const s = await phone();
    await open(s, link(id), SAM, true);
    await s.getByLabel(/^Comment/).fill('security ok');
    await s.getByRole('button', { name: 'Approve', exact: true }).click();
    await waitForText(s, 'Approved by Sam Security');
    expect(await stateOf(b, id)).toBe('approved');
    expect(await main(s)).toContain('security ok');
    expect(await main(s)).not.toContain('Still needed');
  });

  it('a rule decides: the page names it, and offers no review', async () => {
    const id = await fileRequest(b, alice, {
      role: 'ops-ticketed',
      reason: 'incident',
      ticket: 'INC-42',
    });
    const l = await phone();
    await open(l, link(id), lee, false);
    const text = await main(l);
    expect(text).toMatch(/Approved\. Approved automatically by rule incident at \d\d:\d\d UTC/);
    expect(text).toMatch(/Decided by\s+rule incident of the policy/i);
    expect(text).toMatch(/Approvals\s+none: rule incident decided/i);
    expect(await l.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(0);
  });

  it('scheduled: lee approves ahead of the window; the page says when it starts, then that it started', async () => {
    // (Ten minutes ahead: lee's session outlives the wait, and the identity provider, on the
    // real clock, is not needed again once the broker's clock has moved.)
    const start = new Date(b.clock.now() + 10 * 60_000);
    const hm = start.toISOString().slice(11, 16);
    const id = await fileRequest(b, alice, {
      role: 'staging-admin',
      reason: 'maintenance window',
      duration: '1h',
      starts_at: start.toISOString(),
    });
    const l = await phone();
    await open(l, link(id), lee, true);
    const text = await main(l);
    const endHm = new Date(start.getTime() + 3_600_000).toISOString().slice(11, 16);
    expect(text).toMatch(new RegExp(`Kind\\s+Scheduled for ${hm} UTC to ${endHm} UTC`, 'i'));
    expect(text).toContain(`starts at ${hm} UTC (in 10m), approvable now`);
    await l.getByRole('button', { name: 'Approve', exact: true }).click();
    await waitForText(l, 'Scheduled.');
    expect(await main(l)).toMatch(
      new RegExp(`Approved by Lee Lead at \\d\\d:\\d\\d UTC; starts at ${hm} UTC \\(in 10m\\)`),
    );
    expect(await stateOf(b, id)).toBe('scheduled');
    // No credential before the start; once the window opens, the page says so.
    const early = await callApi(b, alice, 'POST', `/v1/requests/${id}/credential`);
    expect(early.status).toBeGreaterThanOrEqual(400);
    b.clock.advance(11 * 60_000);
    await l.reload();
    await waitForText(l, 'its scheduled window opened');
    expect(await main(l)).toMatch(/^Request req_\w+\s+Approved\./);
    expect(await stateOf(b, id)).toBe('approved');
  });
});
