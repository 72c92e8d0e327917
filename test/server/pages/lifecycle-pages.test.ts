import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevUser } from '../../../src/server/dev/index.js';
import { type CookieJar, openReviewPage } from '../../support/dev-browser.js';
import {
  browse,
  callApi,
  csrfOf,
  devUser,
  fileRequest,
  fingerprintOf,
  KIM,
  type PagesBroker,
  SAM,
  signInAt,
  startPagesBroker,
  stateOf,
} from '../../support/pages.js';

/**
 * The lifecycle on the review pages over plain HTTP, against the real broker (--dev, its identity
 * provider): an extension asked for and approved on the pages (each with a step-up, then a
 * confirmation), a break-glass grant acknowledged and another flagged, multi-party progress per
 * group, `require_review_comment`, a rule's decision, a scheduled start, and what an attacker
 * gets (a forged form, a self-review of an extension, markup in a reason). Its own broker: the
 * clock moves here (a break-glass review falls overdue), which would upset other files' step-ups.
 */

const alice = devUser('alice');
const lee = devUser('lee');
const bob = devUser('bob');

let b: PagesBroker;
beforeAll(async () => {
  b = await startPagesBroker();
});
afterAll(async () => {
  await b?.close();
});

const page = (id: string) => `${b.url}/ui/requests/${id}`;

/** Signs `person` in at the pages (with the one-time code unless `mfa: false`), on a fresh jar. */
const signedIn = (person: DevUser, path: string, mfa = true) => signInAt(b, person, path, mfa);

/** A form POST from the page's own origin. */
const send = (jar: CookieJar, url: string, form: Record<string, string>) =>
  browse(jar, url, { form, headers: { origin: b.url } });

async function row(id: string) {
  return b.broker.db.kysely
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

async function auditTypes(id: string): Promise<string[]> {
  const rows = await b.broker.db.kysely
    .selectFrom('audit_events')
    .select('type')
    .where('request_id', '=', id)
    .orderBy('seq')
    .execute();
  return rows.map((r) => r.type);
}

/** Files `role` as alice and has lee approve it through the API; returns the id. */
async function liveGrant(role: string, reason: string): Promise<string> {
  const id = await fileRequest(b, alice, { role, reason });
  const request = (await callApi(b, lee, 'GET', `/v1/requests/${id}`)).body as {
    fingerprint: string;
  };
  const res = await callApi(b, lee, 'POST', `/v1/requests/${id}/reviews`, {
    decision: 'approve',
    fingerprint: request.fingerprint,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return id;
}

describe('extensions on the pages', () => {
  it('alice asks for more time on her grant, lee approves it with a step-up then a confirmation; the end moves', async () => {
    const id = await liveGrant('db-console', 'long migration');
    const endBefore = (await row(id)).expires_at;

    // alice, signed in with her password only, on her own grant's page.
    const a = await signedIn(alice, `/ui/requests/${id}`, false);
    expect(a.first.text).toContain('Ask for more time');
    expect(a.first.text).toContain(
      'Role db-console allows up to 1h of extensions in all (1h left). An approver reviews it',
    );
    expect(a.first.html).toMatch(/<label for="extend-duration">/);
    expect(a.first.html).toMatch(/<textarea id="extend-reason" name="reason" [^>]*required>/);
    // The service's rule, shown as the page's message, with what she typed kept.
    const noReason = await send(a.jar, `${page(id)}/extend`, {
      _csrf: csrfOf(a.first.html),
      duration: '30m',
    });
    expect(noReason.status).toBe(400);
    expect(noReason.text).toContain('extensions of role db-console require a reason');
    expect(noReason.html).toMatch(/id="extend-duration" name="duration" value="30m"/);
    const junk = await send(a.jar, `${page(id)}/extend`, {
      _csrf: csrfOf(a.first.html),
      duration: 'soon',
      reason: 'x',
    });
    expect(junk.status).toBe(400);
    expect(junk.text).toContain('duration');
    expect((await row(id)).extension_state).toBeNull();

    // Asking needs the role's step-up: off to the identity provider, back to confirm.
    const ask = await send(a.jar, `${page(id)}/extend`, {
      _csrf: csrfOf(a.first.html),
      duration: '2h',
      reason: 'the <b>migration</b> is at 80%',
    });
    expect(ask.status).toBe(303);
    expect(new URL(ask.location!).pathname).toBe('/idp/auth');
    const back = await openReviewPage(ask.location!, alice, { jar: a.jar, mfa: true });
    expect(back.text).toContain('Confirm your ask');
    expect(back.html).toMatch(/name="duration" value="2h"/);
    expect(back.html).toContain('>the &lt;b&gt;migration&lt;/b&gt; is at 80%</textarea>');
    expect(back.html).toContain('>Confirm: ask for 2h more</button>');
    expect((await row(id)).extension_state).toBeNull();
    // More than the policy allows: the service's refusal, with its hint.
    const tooMuch = await send(a.jar, `${page(id)}/extend`, {
      _csrf: csrfOf(back.html),
      duration: '2h',
      reason: 'the <b>migration</b> is at 80%',
    });
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.text).toContain('role db-console allows at most 1h in all');
    expect(tooMuch.text).toContain('ask for 1h or less');
    expect((await row(id)).extension_state).toBeNull();
    const asked = await send(a.jar, `${page(id)}/extend`, {
      _csrf: csrfOf(tooMuch.html),
      duration: '30m',
      reason: 'the <b>migration</b> is at 80%',
    });
    expect(asked.status).toBe(303);
    expect(asked.location).toBe(`/ui/requests/${id}`);
    const mine = await browse(a.jar, page(id));
    expect(mine.text).toContain('Extension under review');
    expect(mine.text).toContain('You asked for this extension, so you cannot review it');
    expect(mine.text).not.toContain('Ask for more time');
    // Markup in the reason is text, never markup.
    expect(mine.html).toContain('the &lt;b&gt;migration&lt;/b&gt; is at 80%');
    expect(mine.html).not.toContain('<b>migration</b>');
    const extFingerprint = (await row(id)).extension_fingerprint!;
    expect(mine.text).toContain(extFingerprint);

    // Her own review of it, forged into the page's form: refused by the service.
    const self = await send(a.jar, `${page(id)}/review`, {
      _csrf: csrfOf(mine.html),
      target: 'extension',
      fingerprint: extFingerprint,
      decision: 'approve',
    });
    expect(self.status).toBe(403);
    expect(self.text).toContain('you cannot review your own request');
    expect((await row(id)).extension_state).toBe('pending');

    // lee sees it waiting for him at home, then on the page.
    const l = await signedIn(lee, '/ui/', false);
    expect(l.first.text).toContain('Extensions waiting for your review');
    expect(l.first.text).toMatch(
      new RegExp(`${id} Approved db-console for 30m .*asks for 30m more: 0 of 1 approval`),
    );
    const shown = await browse(l.jar, page(id));
    expect(shown.text).toContain(
      'Alice Developer (alice) asks for 30m more: the grant would end at',
    );
    expect(shown.text).toMatch(/Approvals 0 of 1 approval needed/i);
    expect(fingerprintOf(shown.html)).toBe(extFingerprint);
    expect(shown.html).toContain('name="target" value="extension"');
    expect(shown.html).toMatch(/<label for="ext-comment">/);

    const approve = await send(l.jar, `${page(id)}/review`, {
      _csrf: csrfOf(shown.html),
      target: 'extension',
      fingerprint: extFingerprint,
      decision: 'approve',
      comment: 'fine, finish it',
    });
    expect(approve.status).toBe(303);
    expect(JSON.parse(new URL(approve.location!).searchParams.get('claims')!)).toEqual({
      id_token: { acr: { essential: true, values: ['mfa'] } },
    });
    const confirm = await openReviewPage(approve.location!, lee, { jar: l.jar, mfa: true });
    expect(confirm.url).toBe(page(id));
    expect(confirm.text).toContain('Confirm your decision on the extension');
    expect(confirm.html).toContain('>fine, finish it</textarea>');
    expect(confirm.html).toMatch(/value="approve" class="approve">Confirm: approve</);
    expect((await row(id)).expires_at).toBe(endBefore);
    const done = await send(l.jar, `${page(id)}/review`, {
      _csrf: csrfOf(confirm.html),
      target: 'extension',
      fingerprint: fingerprintOf(confirm.html),
      decision: 'approve',
      comment: 'fine, finish it',
    });
    expect(done.status).toBe(303);
    const after = await row(id);
    expect(after.expires_at).toBe(endBefore + 30 * 60_000);
    expect(after.extension_state).toBe('approved');
    expect(await auditTypes(id)).toEqual([
      'request.created',
      'review.recorded',
      'request.approved',
      'extension.requested',
      'review.recorded',
      'extension.approved',
    ]);
    const final = await browse(l.jar, page(id));
    expect(final.text).toMatch(
      /Extensions so far Extended by 30m by Lee Lead at \d\d:\d\d UTC; until \d\d:\d\d UTC\./,
    );
    expect(final.text).toMatch(/valid until \d\d:\d\d UTC \(in (59|1h|1h0)m?\), extended by 30m\./);
    expect(final.text).toContain('Extended by 30m in all');
    expect(final.text).not.toContain('Extension under review');
  });

  it('refuses extension forms without a CSRF token or from another site; bob may not see, alice may withdraw', async () => {
    const id = await liveGrant('staging-debug', 'flaky pod');
    const a = await signedIn(alice, `/ui/requests/${id}`);
    const token = csrfOf(a.first.html);
    const form = { duration: '15m', reason: 'more' };
    const none = await send(a.jar, `${page(id)}/extend`, form);
    expect(none.status).toBe(403);
    expect(none.text).toContain('This form is out of date, or was not sent from this page');
    const foreign = await browse(a.jar, `${page(id)}/extend`, {
      form: { ...form, _csrf: token },
      headers: { origin: 'http://localhost:1' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toContain('This form was sent from another site');
    const otherSession = await signedIn(alice, `/ui/requests/${id}`);
    const stolen = await send(a.jar, `${page(id)}/extend`, {
      ...form,
      _csrf: csrfOf(otherSession.first.html),
    });
    expect(stolen.status).toBe(403);
    const big = await send(a.jar, `${page(id)}/extend`, {
      _csrf: token,
      duration: '15m',
      reason: 'r'.repeat(1001),
    });
    expect(big.status).toBe(400);
    expect(big.text).toContain('The reason is 1001 characters; at most 1000 fit');
    expect((await row(id)).extension_state).toBeNull();

    // Not offered on someone else's grant, and refused by the service when forged.
    const bobs = await signedIn(bob, '/ui/');
    const forged = await send(bobs.jar, `${page(id)}/extend`, {
      ...form,
      _csrf: csrfOf(bobs.first.html),
    });
    expect(forged.status).toBe(403);
    expect((await row(id)).extension_state).toBeNull();

    // A role without `extend` offers nothing.
    const plain = await liveGrant('staging-admin', 'no extend');
    const plainPage = await browse(a.jar, page(plain));
    expect(plainPage.status).toBe(200);
    expect(plainPage.html).not.toContain('/extend"');

    const ok = await send(a.jar, `${page(id)}/extend`, { ...form, _csrf: token });
    expect(ok.status).toBe(303);
    expect((await row(id)).extension_state).toBe('pending');
    // A forged extension review from another site changes nothing either.
    const l = await signedIn(lee, `/ui/requests/${id}`);
    const crossReview = await browse(l.jar, `${page(id)}/review`, {
      form: {
        _csrf: csrfOf(l.first.html),
        target: 'extension',
        fingerprint: fingerprintOf(l.first.html),
        decision: 'approve',
      },
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(crossReview.status).toBe(403);
    expect((await row(id)).extension_state).toBe('pending');

    const mine = await browse(a.jar, page(id));
    expect(mine.text).toContain('Withdraw this extension request');
    const withdrawn = await send(a.jar, `${page(id)}/cancel`, { _csrf: csrfOf(mine.html) });
    expect(withdrawn.status).toBe(303);
    expect(await stateOf(b, id)).toBe('approved');
    const after = await browse(a.jar, page(id));
    expect(after.text).toMatch(
      /An extension by 15m was withdrawn by Alice Developer at \d\d:\d\d UTC\./,
    );
    expect(after.text).toContain('Ask for more time');
  });
});

describe('break-glass on the pages', () => {
  it('a banner says so; lee acknowledges one (step-up, then confirm) and flags another (with a comment); overdue ones come first at home', async () => {
    const first = await fileRequest(b, alice, {
      role: 'prod-emergency',
      reason: 'prod is down <script>alert(1)</script>',
      break_glass: true,
    });
    const second = await fileRequest(b, alice, {
      role: 'prod-emergency',
      reason: 'still down',
      break_glass: true,
    });
    expect(await stateOf(b, first)).toBe('approved');

    // The user sees the banner, and no way to review her own use.
    const a = await signedIn(alice, `/ui/requests/${first}`);
    expect(a.first.text).toContain('Break-glass access: to be reviewed');
    expect(a.first.text).toContain('You used this access, so you cannot review it');
    expect(a.first.html).not.toContain('/break-glass"');
    expect(a.first.html).toContain('prod is down &lt;script&gt;');
    const selfAck = await send(a.jar, `${page(first)}/break-glass`, {
      _csrf: csrfOf(a.first.html),
      verdict: 'acknowledge',
    });
    expect(selfAck.status).toBe(403);
    expect(selfAck.text).toContain('you cannot review your own break-glass access');

    // Review by falls due (review_within: 1m): the first becomes overdue; home lists it first.
    b.clock.advance(2 * 60_000);
    const third = await fileRequest(b, alice, {
      role: 'prod-emergency',
      reason: 'a third time',
      break_glass: true,
    });
    const l = await signedIn(lee, '/ui/', false);
    expect(l.first.text).toContain('Break-glass to review');
    const list = l.first.html.slice(l.first.html.indexOf('bg-list-title'));
    const order = [first, second, third].map((id) => list.indexOf(id));
    expect(order.every((i) => i > 0)).toBe(true);
    // Both overdue ones (newest first) before the one still in time.
    expect(order[1]).toBeLessThan(order[2]!);
    expect(order[0]).toBeLessThan(order[2]!);
    expect(l.first.text).toContain('break-glass: review overdue');

    const shown = await browse(l.jar, page(first));
    expect(shown.text).toContain('Break-glass access: review overdue');
    expect(shown.text).toContain(
      'Alice Developer (alice) took prod-emergency at once, without approval',
    );
    expect(shown.text).toMatch(/Taken as break-glass access, without approval, at \d\d:\d\d UTC/);
    expect(shown.html).toMatch(/<label for="bg-comment">/);
    const ack = await send(l.jar, `${page(first)}/break-glass`, {
      _csrf: csrfOf(shown.html),
      verdict: 'acknowledge',
      comment: 'called me first',
    });
    expect(ack.status).toBe(303);
    expect(new URL(ack.location!).pathname).toBe('/idp/auth');
    const confirm = await openReviewPage(ack.location!, lee, { jar: l.jar, mfa: true });
    expect(confirm.text).toContain('Confirm your review');
    expect(confirm.html).toMatch(/value="acknowledge" class="approve">Confirm: acknowledge</);
    expect(confirm.html).toContain('>called me first</textarea>');
    expect((await row(first)).break_glass_verdict).toBeNull();
    const acked = await send(l.jar, `${page(first)}/break-glass`, {
      _csrf: csrfOf(confirm.html),
      verdict: 'acknowledge',
      comment: 'called me first',
    });
    expect(acked.status).toBe(303);
    expect((await row(first)).break_glass_verdict).toBe('acknowledged');
    const ackPage = await browse(l.jar, page(first));
    expect(ackPage.text).toMatch(
      /Break-glass access, acknowledged .*Acknowledged by Lee Lead \(lee\) at \d\d:\d\d UTC\. “?called me first/,
    );

    // Flagging needs a comment (the service says so), then is recorded; the grant stays.
    const second1 = await browse(l.jar, page(second));
    const bare = await send(l.jar, `${page(second)}/break-glass`, {
      _csrf: csrfOf(second1.html),
      verdict: 'flag',
    });
    expect(bare.status).toBe(400);
    expect(bare.text).toContain('flagging break-glass access needs a comment');
    const odd = await send(l.jar, `${page(second)}/break-glass`, {
      _csrf: csrfOf(second1.html),
      verdict: 'maybe',
    });
    expect(odd.status).toBe(400);
    expect(odd.text).toContain('Choose Acknowledge or Flag');
    const flagged = await send(l.jar, `${page(second)}/break-glass`, {
      _csrf: csrfOf(second1.html),
      verdict: 'flag',
      comment: 'no incident was open',
    });
    expect(flagged.status).toBe(303);
    const flagRow = await row(second);
    expect(flagRow.break_glass_verdict).toBe('flagged');
    expect(flagRow.state).toBe('approved');
    const flagPage = await browse(l.jar, page(second));
    expect(flagPage.text).toContain('Break-glass access, flagged');
    expect(flagPage.text).toContain('no incident was open');
    expect(flagPage.text).toContain('Flagging does not end the grant: revoke it to end it now.');
    expect(flagPage.html).toContain(`/ui/requests/${second}/revoke`);
    expect(await auditTypes(second)).toEqual([
      'request.created',
      'request.approved',
      'break_glass.used',
      'break_glass.overdue',
      'break_glass.flagged',
    ]);

    // A forged acknowledgement (no token, another site) changes nothing.
    const thirdPage = await browse(l.jar, page(third));
    const forged = await send(l.jar, `${page(third)}/break-glass`, { verdict: 'acknowledge' });
    expect(forged.status).toBe(403);
    const cross = await browse(l.jar, `${page(third)}/break-glass`, {
      form: { _csrf: csrfOf(thirdPage.html), verdict: 'acknowledge' },
      headers: { origin: 'http://localhost:1' },
    });
    expect(cross.status).toBe(403);
    expect((await row(third)).break_glass_verdict).toBeNull();
    // Only approvers review it: bob (a developer) cannot, even forged.
    const bobs = await signedIn(bob, '/ui/');
    expect(bobs.first.text).not.toContain('Break-glass to review');
    const bobAck = await send(bobs.jar, `${page(third)}/break-glass`, {
      _csrf: csrfOf(bobs.first.html),
      verdict: 'acknowledge',
    });
    expect(bobAck.status).toBe(403);
    expect((await row(third)).break_glass_verdict).toBeNull();
  });
});

describe('approval rules, multi-party roles and scheduled starts on the pages', () => {
  it('shows what each group still owes, requires the role’s comment, and approves when both groups have', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-secrets', reason: 'rotate the key' });
    const l = await signedIn(lee, `/ui/requests/${id}`);
    expect(l.first.text).toContain(
      'Waiting for approval: 0 of 1 from group:leads, 0 of 1 from group:security',
    );
    expect(l.first.text).toContain(
      'Comment (required: role prod-secrets asks approvers to say why',
    );
    expect(l.first.html).toMatch(/<textarea id="comment" name="comment" [^>]*required>/);
    const review = (jar: CookieJar, html: string, form: Record<string, string>) =>
      send(jar, `${page(id)}/review`, {
        _csrf: csrfOf(html),
        fingerprint: fingerprintOf(html),
        decision: 'approve',
        ...form,
      });
    // Without a comment: the service refuses, the page says why.
    const bare = await review(l.jar, l.first.html, {});
    expect(bare.status).toBe(400);
    expect(bare.text).toContain('role prod-secrets requires a comment with each review');
    expect((await row(id)).review_count).toBe(0);
    expect((await review(l.jar, l.first.html, { comment: 'key is due' })).status).toBe(303);
    const half = await browse(l.jar, page(id));
    expect(half.text).toContain(
      'Waiting for approval: 1 of 1 from group:leads ✓, 0 of 1 from group:security',
    );
    expect(half.html).toMatch(/<li class="done">1 of 1 from group:leads ✓<\/li>/);

    // Another lead cannot fill security's place.
    const k = await signedIn(KIM, `/ui/requests/${id}`);
    const kim = await review(k.jar, k.first.html, { comment: 'me too' });
    expect(kim.status).toBe(403);
    expect(kim.text).toContain('your approval would not count');
    expect(kim.text).toContain('0 of 1 from group:security');

    const s = await signedIn(SAM, `/ui/requests/${id}`);
    expect((await review(s.jar, s.first.html, { comment: 'security ok' })).status).toBe(303);
    expect(await stateOf(b, id)).toBe('approved');
    const done = await browse(s.jar, page(id));
    expect(done.text).toMatch(/Approved\. Approved by Sam Security at \d\d:\d\d UTC/);
    expect(done.text).toContain('1 of 1 from group:leads ✓ 1 of 1 from group:security ✓');
  });

  it('names the rule that decided, and shows a scheduled start as approvable now', async () => {
    const auto = await fileRequest(b, alice, {
      role: 'ops-ticketed',
      reason: 'incident',
      ticket: 'INC-42',
    });
    const denied = await fileRequest(b, alice, {
      role: 'ops-ticketed',
      reason: 'change',
      ticket: 'CHG-7',
    });
    const a = await signedIn(alice, `/ui/requests/${auto}`);
    expect(a.first.text).toMatch(
      /Approved\. Approved automatically by rule incident at \d\d:\d\d UTC; valid until/,
    );
    expect(a.first.text).toContain(
      'Decided by rule incident of the policy, automatically when it was filed',
    );
    const d = await browse(a.jar, page(denied));
    expect(d.text).toMatch(
      /Denied\. Denied automatically by rule no change tickets at \d\d:\d\d UTC\./,
    );

    const start = new Date(b.clock.now() + 2 * 3_600_000);
    const scheduled = await fileRequest(b, alice, {
      role: 'staging-admin',
      reason: 'maintenance window',
      starts_at: start.toISOString(),
    });
    const l = await signedIn(lee, `/ui/requests/${scheduled}`);
    const hm = start.toISOString().slice(11, 16);
    expect(l.first.text).toContain(`starts at ${hm} UTC (in 2h), approvable now`);
    expect(l.first.text).toMatch(new RegExp(`Starts ${hm} UTC \\(in 2h\\); approvable now`, 'i'));
    const ok = await send(l.jar, `${page(scheduled)}/review`, {
      _csrf: csrfOf(l.first.html),
      fingerprint: fingerprintOf(l.first.html),
      decision: 'approve',
    });
    expect(ok.status).toBe(303);
    expect(await stateOf(b, scheduled)).toBe('scheduled');
    const after = await browse(l.jar, page(scheduled));
    expect(after.text).toMatch(
      new RegExp(
        `Scheduled\\. Approved by Lee Lead at \\d\\d:\\d\\d UTC; starts at ${hm} UTC \\(in 2h\\)`,
      ),
    );
    expect(after.html).toContain(`/ui/requests/${scheduled}/revoke`);
    const home = await browse(a.jar, `${b.url}/ui/`);
    expect(home.text).toContain('Scheduled grants');
    expect(home.text).toMatch(
      new RegExp(`${scheduled} Scheduled staging-admin .* starts ${hm} UTC \\(in 2h\\)`),
    );
    // The requester may still withdraw it before the start.
    const mine = await browse(a.jar, page(scheduled));
    expect(mine.text).toContain('Withdraw this request');
  });
});
