import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevUser } from '../../../src/server/dev/index.js';
import { CookieJar, openReviewPage } from '../../support/dev-browser.js';
import {
  browse,
  csrfOf,
  devUser,
  fileRequest,
  fingerprintOf,
  KIM,
  type PagesBroker,
  signInAt,
  startPagesBroker,
  stateOf,
} from '../../support/pages.js';

/**
 * The review pages over plain HTTP against the real broker (--dev, its identity provider, the
 * demo users and a second lead): what a browser is sent (headers, cookies, redirects), and what
 * an attacker or a careless client gets (forged forms, tampered sign-ins, bad input). The story
 * in a real browser is test/server/pages/review-browser.test.ts.
 */

const alice = devUser('alice');
const lee = devUser('lee');
const ada = devUser('ada');
const bob = devUser('bob');

let b: PagesBroker;
beforeAll(async () => {
  b = await startPagesBroker();
});
afterAll(async () => {
  await b?.close();
});

const page = (id: string) => `${b.url}/ui/requests/${id}`;

/** Signs `person` in at the pages (with the one-time code unless `mfa: false`), on `jar`. */
const signedIn = (person: DevUser, path = '/ui/', mfa = true) => signInAt(b, person, path, mfa);

describe('review pages: what the browser is sent', () => {
  it('sends a person without a session to the identity provider: code + PKCE S256, state, nonce', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-deploy', reason: 'hotfix INC-4211' });
    const r = await browse(new CookieJar(), page(id));
    expect(r.status).toBe(303);
    const to = new URL(r.location!);
    expect(to.origin + to.pathname).toBe(`${b.url}/idp/auth`);
    expect(Object.fromEntries(to.searchParams)).toMatchObject({
      client_id: 'jitctl-web',
      response_type: 'code',
      redirect_uri: `${b.url}/ui/auth/callback`,
      code_challenge_method: 'S256',
      scope: 'openid profile email groups',
    });
    for (const p of ['code_challenge', 'state', 'nonce'])
      expect(to.searchParams.get(p)).toMatch(/^[\w-]{43}$/);
    // A plain sign-in asks for no particular strength; the step-up does (below).
    expect(to.searchParams.has('claims')).toBe(false);
    const cookie = String(r.headers['set-cookie']);
    expect(cookie).toMatch(/^jitctl-signin=[\w.-]+; Max-Age=600; Path=\/; HttpOnly; SameSite=Lax$/);
    // The sealed cookie shows nothing of what it holds.
    expect(cookie).not.toContain(to.searchParams.get('state')!);
  });

  it('serves pages with a strict CSP, no framing, no referrer, no caching, and no script at all', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-deploy', reason: 'headers' });
    const { jar, first } = await signedIn(lee, `/ui/requests/${id}`);
    expect(first.status).toBe(200);
    const r = await browse(jar, page(id));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['content-security-policy']).toBe(
      "default-src 'none';style-src 'self';img-src 'self';form-action 'self';frame-ancestors 'none';base-uri 'none'",
    );
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['referrer-policy']).toBe('same-origin');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    // Loopback http: no HSTS, no upgrade-insecure-requests (they would break the page).
    expect(r.headers['strict-transport-security']).toBeUndefined();
    expect(r.html).not.toMatch(/<script|\sstyle=|\son\w+=|javascript:/i);
    expect(r.html).toContain(`<link rel="stylesheet" href="/ui/style.css">`);
    // Every control has a label; both decisions are buttons inside the form.
    expect(r.html).toMatch(/<label for="comment">/);
    expect(r.html).toMatch(/<textarea id="comment" name="comment"/);
    expect(r.html).toMatch(/<button type="submit" name="decision" value="approve"/);
    const css = await browse(jar, `${b.url}/ui/style.css`);
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('stores sessions as the SHA-256 of the cookie: the table never yields a usable cookie', async () => {
    const { jar, first } = await signedIn(lee, '/ui/', false);
    expect(first.text).toContain('Signed in as Lee Lead');
    const value = /jitctl-session=([\w-]+)/.exec(jar.header(new URL(b.url)))![1]!;
    expect(value).toMatch(/^[\w-]{43}$/);
    const rows = await b.broker.db.kysely.selectFrom('ui_sessions').selectAll().execute();
    const hash = createHash('sha256').update(value).digest('base64url');
    const row = rows.find((r) => r.id_hash === hash);
    expect(row).toMatchObject({ iss: `${b.url}/idp`, sub: 'lee' });
    expect(JSON.stringify(rows)).not.toContain(value);
    expect(JSON.parse(row!.caller)).toMatchObject({ sub: 'lee', groups: ['leads'], acr: 'pwd' });
  });
});

describe('review pages: forged and broken requests change nothing', () => {
  it('refuses a review without a CSRF token, with a bad one, with another session’s, from a foreign Origin, and as text/plain', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'csrf' });
    const { jar, first } = await signedIn(lee, `/ui/requests/${id}`);
    const token = csrfOf(first.html);
    const fingerprint = fingerprintOf(first.html);
    const other = await signedIn(KIM, `/ui/requests/${id}`);
    const otherToken = csrfOf(other.first.html);
    const review = (form: Record<string, string>, headers: Record<string, string> = {}) =>
      browse(jar, `${page(id)}/review`, { form, headers });
    const fields = { fingerprint, decision: 'approve', comment: 'forged' };

    const none = await review(fields, { origin: b.url });
    expect(none.status).toBe(403);
    expect(none.text).toContain('This form is out of date, or was not sent from this page');
    expect((await review({ ...fields, _csrf: 'abc-def' }, { origin: b.url })).status).toBe(403);
    expect((await review({ ...fields, _csrf: otherToken }, { origin: b.url })).status).toBe(403);
    const foreign = await review({ ...fields, _csrf: token }, { origin: 'http://localhost:1' });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toContain('This form was sent from another site, so it was refused');
    const crossSite = await review({ ...fields, _csrf: token }, { 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const plain = await browse(jar, `${page(id)}/review`, {
      form: { ...fields, _csrf: token },
      headers: { origin: b.url, 'content-type': 'text/plain' },
    });
    expect(plain.status).toBe(415);
    expect(await stateOf(b, id)).toBe('pending');

    const ok = await review({ ...fields, _csrf: token, comment: 'fine' }, { origin: b.url });
    expect(ok.status).toBe(303);
    expect(ok.location).toBe(`/ui/requests/${id}`);
    expect(await stateOf(b, id)).toBe('approved');
    const after = await browse(jar, page(id));
    expect(after.text).toMatch(/Approved\. Approved by Lee Lead at \d\d:\d\d UTC; valid until/);
    expect(after.text).toContain('Lee Lead (lee) approved at');
    expect(after.html).toContain('<q class="text">fine</q>');
  });

  it('refuses a review of a changed request (fingerprint), bad decisions, long comments and big bodies', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'inputs' });
    const { jar, first } = await signedIn(lee, `/ui/requests/${id}`);
    const _csrf = csrfOf(first.html);
    const fingerprint = fingerprintOf(first.html);
    const post = (form: Record<string, string>) =>
      browse(jar, `${page(id)}/review`, { form: { _csrf, ...form }, headers: { origin: b.url } });

    const changed = await post({ fingerprint: '0000-0000-0000-0000', decision: 'approve' });
    expect(changed.status).toBe(409);
    expect(changed.text).toContain(`no longer matches fingerprint 0000-0000-0000-0000`);
    const maybe = await post({ fingerprint, decision: 'maybe' });
    expect(maybe.status).toBe(400);
    expect(maybe.text).toContain('Choose Approve or Deny');
    const long = await post({ fingerprint, decision: 'deny', comment: 'x'.repeat(1001) });
    expect(long.status).toBe(400);
    expect(long.text).toContain('The comment is 1001 characters; at most 1000 fit');
    const noPrint = await post({ decision: 'approve' });
    expect(noPrint.status).toBe(400);
    const twice = await browse(jar, `${page(id)}/review`, {
      form: { _csrf, fingerprint, decision: 'approve' },
      headers: { origin: b.url },
    });
    expect(twice.status).toBe(303); // the good one, to show the others changed nothing first
    expect(await stateOf(b, id)).toBe('approved');

    const id2 = await fileRequest(b, alice, { role: 'staging-admin', reason: 'big body' });
    const big = await browse(jar, `${page(id2)}/review`, {
      form: { _csrf, fingerprint, decision: 'approve', comment: 'y'.repeat(40_000) },
      headers: { origin: b.url },
    });
    expect(big.status).toBe(413);
    expect(big.text).toContain('far larger');
    expect(await stateOf(b, id2)).toBe('pending');
  });

  it('answers unknown requests and pages with HTML pages, never JSON or a 500', async () => {
    const { jar } = await signedIn(lee);
    const unknown = await browse(jar, `${b.url}/ui/requests/req_doesNotExist1`);
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('No such request');
    const weird = await browse(jar, `${b.url}/ui/requests/${encodeURIComponent('<b>x</b>')}`);
    expect(weird.status).toBe(404);
    expect(weird.html).not.toContain('<b>x</b>');
    const nothing = await browse(jar, `${b.url}/ui/nothing-here`);
    expect(nothing.status).toBe(404);
    expect(nothing.headers['content-type']).toContain('text/html');
    expect(nothing.headers['x-frame-options']).toBe('DENY');
    const badPage = await browse(jar, `${b.url}/ui/audit?after=-1`);
    expect(badPage.status).toBe(403); // lee is no auditor: refused before anything else
  });

  it('refuses tampered sign-ins: no sign-in cookie, another state, a replayed answer, a cancel', async () => {
    // An answer from the provider arriving in a browser that did not start the sign-in.
    const stranger = await browse(new CookieJar(), `${b.url}/ui/auth/callback?code=abc&state=xyz`);
    expect(stranger.status).toBe(400);
    expect(stranger.text).toContain('This sign-in has expired or was started in another browser');

    const jar = new CookieJar();
    const start = await browse(jar, `${b.url}/ui/auth/sign-in?return_to=/ui/`);
    const wrong = await browse(jar, `${b.url}/ui/auth/callback?code=abc&state=not-the-state`);
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('does not belong to the sign-in this browser started');
    expect(start.status).toBe(303);

    // A completed sign-in whose answer is replayed later with the same cookies: refused (the
    // sign-in cookie is gone, and the provider would refuse the used code anyway).
    const j2 = new CookieJar();
    let callback: string | undefined;
    await openReviewPage(`${b.url}/ui/`, lee, {
      jar: j2,
      mfa: false,
      trace: (line) => {
        if (line.includes('/ui/auth/callback')) callback = line.split(' ')[1];
      },
    });
    expect(callback).toMatch(/^\/ui\/auth\/callback\?code=/);
    const replay = await browse(j2, `${b.url}${callback}`);
    expect(replay.status).toBe(400);

    const cancelled = await browse(jar, `${b.url}/ui/auth/sign-in?return_to=/ui/`);
    const state = new URL(cancelled.location!).searchParams.get('state')!;
    const denied = await browse(
      jar,
      `${b.url}/ui/auth/callback?error=access_denied&error_description=the+person+cancelled&state=${state}`,
    );
    expect(denied.status).toBe(401);
    expect(denied.text).toContain('The sign-in was cancelled or refused (the person cancelled)');
  });

  it('comes back only to its own pages after signing in (no open redirect)', async () => {
    const jar = new CookieJar();
    for (const target of [
      'https://evil.example/',
      '//evil.example/ui/',
      '/ui/../v1/me',
      '/idp/x',
    ]) {
      const r = await openReviewPage(
        `${b.url}/ui/auth/sign-in?return_to=${encodeURIComponent(target)}`,
        lee,
        { jar, mfa: false },
      );
      expect(new URL(r.url).href).toBe(`${b.url}/ui/`);
    }
  });
});

describe('review pages: the rules of the API', () => {
  it('asks for a fresh MFA sign-in on Approve, then shows the decision again; only the confirmation decides', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-deploy', reason: 'step-up' });
    const { jar, first } = await signedIn(lee, `/ui/requests/${id}`, false);
    expect(first.text).toContain('Approve');
    const post = await browse(jar, `${page(id)}/review`, {
      form: {
        _csrf: csrfOf(first.html),
        fingerprint: fingerprintOf(first.html),
        decision: 'approve',
        comment: 'ship it',
      },
      headers: { origin: b.url },
    });
    expect(post.status).toBe(303);
    const to = new URL(post.location!);
    expect(to.pathname).toBe('/idp/auth');
    expect(JSON.parse(to.searchParams.get('claims')!)).toEqual({
      id_token: { acr: { essential: true, values: ['mfa'] } },
    });
    expect(to.searchParams.get('max_age')).toBe('300');
    expect(to.searchParams.has('acr_values')).toBe(false);
    expect(await stateOf(b, id)).toBe('pending');

    const back = await openReviewPage(post.location!, lee, { jar, mfa: true });
    expect(back.url).toBe(page(id));
    expect(back.text).toContain('Confirm your decision');
    expect(back.text).toContain('Nothing has been recorded yet');
    expect(back.html).toContain('>ship it</textarea>');
    expect(back.html).toMatch(/value="approve" class="approve">Confirm: approve</);
    // Coming back decided nothing.
    expect(await stateOf(b, id)).toBe('pending');

    const confirm = await browse(jar, `${page(id)}/review`, {
      form: {
        _csrf: csrfOf(back.html),
        fingerprint: fingerprintOf(back.html),
        decision: 'approve',
        comment: 'ship it',
      },
      headers: { origin: b.url },
    });
    expect(confirm.status).toBe(303);
    expect(await stateOf(b, id)).toBe('approved');
    const events = await b.broker.db.kysely
      .selectFrom('audit_events')
      .select(['type', 'actor', 'data'])
      .where('request_id', '=', id)
      .orderBy('seq')
      .execute();
    expect(events.map((e) => e.type)).toEqual([
      'request.created',
      'review.recorded',
      'request.approved',
    ]);
    expect(JSON.parse(events[1]!.data)).toMatchObject({ decision: 'approve', comment: 'ship it' });
    expect(JSON.parse(events[1]!.actor!)).toMatchObject({ sub: 'lee' });
  });

  it('revokes with a confirmation page, and lets only the requester, approvers and admins do it', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'revoke me' });
    const { jar, first } = await signedIn(lee, `/ui/requests/${id}`);
    await browse(jar, `${page(id)}/review`, {
      form: {
        _csrf: csrfOf(first.html),
        fingerprint: fingerprintOf(first.html),
        decision: 'approve',
      },
      headers: { origin: b.url },
    });
    const home = await browse(jar, `${b.url}/ui/`);
    expect(home.text).toContain('Active grants you may revoke');
    expect(home.html).toContain(`/ui/requests/${id}/revoke`);

    // bob is a developer who neither filed nor approves it: no Revoke, and a forged POST fails.
    const bobs = await signedIn(bob, `/ui/requests/${id}`);
    expect(bobs.first.status).toBe(403);
    expect(bobs.first.text).toContain(`you may not see request ${id}`);
    const bobHome = await browse(bobs.jar, `${b.url}/ui/`);
    const forged = await browse(bobs.jar, `${page(id)}/revoke`, {
      form: { _csrf: csrfOf(bobHome.html) },
      headers: { origin: b.url },
    });
    expect(forged.status).toBe(403);
    expect(forged.text).toContain(
      'only the requester, an approver of the role or an administrator',
    );

    const ask = await browse(jar, `${page(id)}/revoke`);
    expect(ask.status).toBe(200);
    expect(ask.html).toContain(`<h1>Revoke <span class="mono">${id}</span>?</h1>`);
    expect(ask.text).toContain('Alice Developer has staging-admin until');
    expect(await stateOf(b, id)).toBe('approved');
    expect(ask.html).toContain('<textarea id="reason" name="reason" maxlength="1000"');
    const done = await browse(jar, `${page(id)}/revoke`, {
      form: { _csrf: csrfOf(ask.html), reason: 'rotated the keys instead' },
      headers: { origin: b.url },
    });
    expect(done.status).toBe(303);
    expect(await stateOf(b, id)).toBe('revoked');
    // The reason reaches the requester's jitctl and relying parties through the audit event.
    const revoked = await b.broker.db.kysely
      .selectFrom('audit_events')
      .select('data')
      .where('request_id', '=', id)
      .where('type', '=', 'request.revoked')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(revoked.data)).toMatchObject({ reason: 'rotated the keys instead' });
    const after = await browse(jar, page(id));
    expect(after.text).toMatch(/Revoked\. Revoked by Lee Lead at \d\d:\d\d UTC/);
    expect(after.html).not.toContain('/revoke"');
  });

  it('lets the requester withdraw a pending request, and says who did at what time', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'withdraw' });
    const { jar, first } = await signedIn(alice, `/ui/requests/${id}`);
    expect(first.text).toContain('You filed this request, so you cannot review it');
    expect(first.html).not.toContain('name="decision"');
    const done = await browse(jar, `${page(id)}/cancel`, {
      form: { _csrf: csrfOf(first.html) },
      headers: { origin: b.url },
    });
    expect(done.status).toBe(303);
    const after = await browse(jar, page(id));
    expect(after.text).toMatch(/Cancelled\. Cancelled by Alice Developer at \d\d:\d\d UTC\./);
    const home = await browse(jar, `${b.url}/ui/`);
    expect(home.text).toContain('Your requests');
    expect(home.text).toContain(id);
  });

  it('shows auditors the audit log a page at a time with the chain’s verdict; others get 403', async () => {
    const { jar, first } = await signedIn(ada, '/ui/audit');
    expect(first.status).toBe(200);
    expect(first.text).toMatch(/Hash chain intact: all \d+ events link up to the head/);
    expect(first.text).toContain('request.created');
    const head = Number(
      (await b.broker.db.kysely.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow())
        .seq,
    );
    expect(first.text).toContain(`of ${head}, oldest first`);
    const earliest = await browse(jar, `${b.url}/ui/audit?after=0`);
    expect(earliest.text).toContain('Events 1–');
    expect(earliest.html).not.toContain('>Earlier<');
    for (const bad of ['-1', 'abc', '1e9', '99999999999999999999']) {
      const r = await browse(jar, `${b.url}/ui/audit?after=${encodeURIComponent(bad)}`);
      expect(r.status).toBe(400);
      expect(r.text).toContain('`after` must be an event number');
    }
    const home = await browse(jar, `${b.url}/ui/`);
    expect(home.text).toContain('Hash chain intact');

    const leeSees = await signedIn(lee, '/ui/audit');
    expect(leeSees.first.status).toBe(403);
    expect(leeSees.first.text).toContain('Auditors are members of group:auditors');
  });

  it('finds an edited event once the watch walks the log again (tampering after a verdict)', async () => {
    const { jar } = await signedIn(ada, '/ui/audit');
    await b.broker.db.kysely
      .updateTable('audit_events')
      .set({ data: '{"role":"everything"}' })
      .where('seq', '=', 1)
      .execute();
    // Already verified, so the next look only extends the verdict to new events…
    const soon = await browse(jar, `${b.url}/ui/audit`);
    expect(soon.text).toContain('Hash chain intact');
    // …until the watch walks from the first event again (every 10 minutes).
    b.clock.advance(11 * 60_000);
    const later = await browse(jar, `${b.url}/ui/audit`);
    expect(later.text).toContain(
      "The hash chain is broken at event 1: hash does not match the event's content",
    );
  });

  it('refuses a decision from an expired session and asks to sign in again; nothing is recorded', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'expiry' });
    const { jar, first } = await signedIn(lee, `/ui/requests/${id}`);
    b.clock.advance(61 * 60_000);
    const late = await browse(jar, `${page(id)}/review`, {
      form: {
        _csrf: csrfOf(first.html),
        fingerprint: fingerprintOf(first.html),
        decision: 'approve',
      },
      headers: { origin: b.url },
    });
    expect(late.status).toBe(401);
    expect(late.text).toContain('Your session has expired, so nothing was recorded');
    expect(late.html).toContain(
      `href="/ui/auth/sign-in?return_to=${encodeURIComponent(`/ui/requests/${id}`)}"`,
    );
    expect(await stateOf(b, id)).toBe('pending');
    // The session row is gone; the page sends the person to sign in again.
    const again = await browse(jar, page(id));
    expect(again.status).toBe(303);
    expect(new URL(again.location!).pathname).toBe('/idp/auth');
  });
});
