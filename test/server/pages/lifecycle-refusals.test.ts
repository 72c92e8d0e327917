import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevUser } from '../../../src/server/dev/index.js';
import type { CookieJar } from '../../support/dev-browser.js';
import {
  browse,
  callApi,
  csrfOf,
  devUser,
  fileRequest,
  fingerprintOf,
  KIM,
  type Loaded,
  type PagesBroker,
  signInAt,
  startPagesBroker,
} from '../../support/pages.js';

/**
 * What the lifecycle's forms on the review pages refuse, over plain HTTP against the real broker:
 * a second approval by the same person (of a request, of an extension), a form without its CSRF
 * token, a decision without the step-up (nothing is recorded; the person is sent to sign in
 * again), a review without the comment the role requires, and people who may not decide (a
 * developer, an auditor, a lead of the wrong group). Every refusal leaves the database as it was.
 */

const alice = devUser('alice');
const lee = devUser('lee');
const bob = devUser('bob');
const ada = devUser('ada');

let b: PagesBroker;
beforeAll(async () => {
  b = await startPagesBroker();
});
afterAll(async () => {
  await b?.close();
});

const page = (id: string) => `${b.url}/ui/requests/${id}`;

async function signedIn(person: DevUser, id: string, mfa = true) {
  const { jar, first } = await signInAt(b, person, `/ui/requests/${id}`, mfa);
  return { jar, html: first.html, text: first.text };
}

const send = (jar: CookieJar, url: string, form: Record<string, string>) =>
  browse(jar, url, { form, headers: { origin: b.url } });

async function row(id: string) {
  return b.broker.db.kysely
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

async function reviewRows(id: string): Promise<number> {
  const rows = await b.broker.db.kysely
    .selectFrom('reviews')
    .select('decision')
    .where('request_id', '=', id)
    .execute();
  return rows.length;
}

/** A live grant of `role` for alice (lee approved it through the API). */
async function liveGrant(role: string, extra: { break_glass?: boolean } = {}): Promise<string> {
  const id = await fileRequest(b, alice, { role, reason: 'work', ...extra });
  if (extra.break_glass) return id;
  const seen = (await callApi(b, lee, 'GET', `/v1/requests/${id}`)).body as {
    fingerprint: string;
  };
  const res = await callApi(b, lee, 'POST', `/v1/requests/${id}/reviews`, {
    decision: 'approve',
    fingerprint: seen.fingerprint,
  });
  expect(res.status).toBe(200);
  return id;
}

/** alice asks for `duration` more through the API. */
async function askExtension(id: string, duration: string, reason = 'not done'): Promise<void> {
  const res = await callApi(b, alice, 'POST', `/v1/requests/${id}/extend`, { duration, reason });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

/** The step-up answer: off to the identity provider asking for the one-time code. */
function expectStepUp(res: Loaded): void {
  expect(res.status).toBe(303);
  const to = new URL(res.location!);
  expect(to.pathname).toBe('/idp/auth');
  expect(JSON.parse(to.searchParams.get('claims')!)).toEqual({
    id_token: { acr: { essential: true, values: ['mfa'] } },
  });
}

describe('the lifecycle forms refuse', () => {
  it('a second approval by the same person, of a request and of an extension', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-secrets', reason: 'rotate' });
    const l = await signedIn(lee, id);
    const form = {
      _csrf: csrfOf(l.html),
      fingerprint: fingerprintOf(l.html),
      decision: 'approve',
      comment: 'due',
    };
    expect((await send(l.jar, `${page(id)}/review`, form)).status).toBe(303);
    const again = await send(l.jar, `${page(id)}/review`, form);
    expect(again.status).toBe(409);
    expect(again.text).toMatch(/already reviewed/i);
    expect(await reviewRows(id)).toBe(1);
    expect((await row(id)).state).toBe('pending');
    // The page offers no second review either.
    const shown = await browse(l.jar, page(id));
    expect(shown.text).toMatch(/You approved this request at \d\d:\d\d UTC/);
    expect(shown.html).not.toContain('name="fingerprint"');

    // An extension that needs two leads: lee's second approval counts once.
    const grant = await liveGrant('long-debug');
    await askExtension(grant, '30m');
    const g = await signedIn(lee, grant);
    const ext = {
      _csrf: csrfOf(g.html),
      target: 'extension',
      fingerprint: fingerprintOf(g.html),
      decision: 'approve',
    };
    expect(ext.fingerprint).toBe((await row(grant)).extension_fingerprint);
    expect((await send(g.jar, `${page(grant)}/review`, ext)).status).toBe(303);
    const twice = await send(g.jar, `${page(grant)}/review`, ext);
    expect(twice.status).toBe(409);
    expect(twice.text).toMatch(/already reviewed/i);
    const after = await browse(g.jar, page(grant));
    expect(after.text).toMatch(/You approved this extension at \d\d:\d\d UTC; it stands at 1 of 2/);
    expect((await row(grant)).extension_state).toBe('pending');
    // kim's is the second, and the end moves.
    const k = await signedIn(KIM, grant);
    expect(
      (
        await send(k.jar, `${page(grant)}/review`, {
          ...ext,
          _csrf: csrfOf(k.html),
        })
      ).status,
    ).toBe(303);
    expect((await row(grant)).extension_state).toBe('approved');
  });

  it('a form without its CSRF token, on every lifecycle form', async () => {
    const grant = await liveGrant('staging-debug');
    const a = await signedIn(alice, grant);
    const noToken = await send(a.jar, `${page(grant)}/extend`, { duration: '15m' });
    expect(noToken.status).toBe(403);
    expect(noToken.text).toContain('This form is out of date, or was not sent from this page');
    expect((await row(grant)).extension_state).toBeNull();

    await askExtension(grant, '15m');
    const l = await signedIn(lee, grant);
    const review = await send(l.jar, `${page(grant)}/review`, {
      target: 'extension',
      fingerprint: fingerprintOf(l.html),
      decision: 'approve',
    });
    expect(review.status).toBe(403);
    expect((await row(grant)).extension_state).toBe('pending');
    // A token from another person's session is no better.
    const wrong = await send(l.jar, `${page(grant)}/review`, {
      _csrf: csrfOf(a.html),
      target: 'extension',
      fingerprint: fingerprintOf(l.html),
      decision: 'approve',
    });
    expect(wrong.status).toBe(403);
    expect((await row(grant)).extension_state).toBe('pending');

    const glass = await liveGrant('prod-emergency', { break_glass: true });
    const lg = await signedIn(lee, glass);
    const ack = await send(lg.jar, `${page(glass)}/break-glass`, {
      verdict: 'acknowledge',
      comment: 'ok',
    });
    expect(ack.status).toBe(403);
    expect((await row(glass)).break_glass_verdict).toBeNull();
  });

  it('a decision without the step-up: nothing is recorded, the person signs in again', async () => {
    // db-console and prod-emergency ask for a one-time code within 5 minutes; these sessions
    // were made with the password only.
    const grant = await liveGrant('db-console');
    const a = await signedIn(alice, grant, false);
    expectStepUp(
      await send(a.jar, `${page(grant)}/extend`, {
        _csrf: csrfOf(a.html),
        duration: '15m',
        reason: 'still running',
      }),
    );
    expect((await row(grant)).extension_state).toBeNull();

    await askExtension(grant, '15m', 'still running');
    const l = await signedIn(lee, grant, false);
    expectStepUp(
      await send(l.jar, `${page(grant)}/review`, {
        _csrf: csrfOf(l.html),
        target: 'extension',
        fingerprint: fingerprintOf(l.html),
        decision: 'approve',
      }),
    );
    expect((await row(grant)).extension_state).toBe('pending');
    expect(await reviewRows(grant)).toBe(1); // the request's own approval only

    const glass = await liveGrant('prod-emergency', { break_glass: true });
    const lg = await signedIn(lee, glass, false);
    expectStepUp(
      await send(lg.jar, `${page(glass)}/break-glass`, {
        _csrf: csrfOf(lg.html),
        verdict: 'flag',
        comment: 'why?',
      }),
    );
    expect((await row(glass)).break_glass_verdict).toBeNull();
  });

  it('a review without the comment the role requires, blank or only spaces', async () => {
    const id = await fileRequest(b, alice, { role: 'prod-secrets', reason: 'rotate' });
    const l = await signedIn(lee, id);
    for (const comment of [undefined, '   \n ']) {
      const res = await send(l.jar, `${page(id)}/review`, {
        _csrf: csrfOf(l.html),
        fingerprint: fingerprintOf(l.html),
        decision: 'deny',
        ...(comment === undefined ? {} : { comment }),
      });
      expect(res.status).toBe(400);
      expect(res.text).toContain('role prod-secrets requires a comment with each review');
      expect(res.text).toContain('Write it in the Comment box, then choose again.');
      expect(res.text).not.toContain('--comment');
    }
    expect(await reviewRows(id)).toBe(0);
    expect((await row(id)).state).toBe('pending');
  });

  it('people who may not decide: a developer, an auditor, a lead of the wrong group', async () => {
    const grant = await liveGrant('staging-debug');
    await askExtension(grant, '15m');
    const extFingerprint = (await row(grant)).extension_fingerprint!;
    const bobs = await signedIn(bob, grant);
    // bob is neither its requester nor an approver: the page is not his to see.
    expect(bobs.text).toContain('No such request');
    expect(bobs.html).not.toContain('name="fingerprint"');
    const bobReview = await send(bobs.jar, `${page(grant)}/review`, {
      _csrf: csrfOf(bobs.html),
      target: 'extension',
      fingerprint: extFingerprint,
      decision: 'approve',
    });
    expect(bobReview.status).toBe(403);
    expect(bobReview.text).toContain('you may not review requests for role staging-debug');
    expect((await row(grant)).extension_state).toBe('pending');

    const glass = await liveGrant('prod-emergency', { break_glass: true });
    const adas = await signedIn(ada, glass);
    expect(adas.text).toContain('Break-glass access: to be reviewed');
    expect(adas.text).toContain('Approvers of role prod-emergency review it: group:leads.');
    expect(adas.html).not.toContain('/break-glass"');
    const adaAck = await send(adas.jar, `${page(glass)}/break-glass`, {
      _csrf: csrfOf(adas.html),
      verdict: 'acknowledge',
      comment: 'seen',
    });
    expect(adaAck.status).toBe(403);
    expect(adaAck.text).toContain('you may not review break-glass access to role prod-emergency');
    expect((await row(glass)).break_glass_verdict).toBeNull();
    // Nor may ada extend alice's grant.
    const adaExtend = await send(adas.jar, `${page(grant)}/extend`, {
      _csrf: csrfOf(adas.html),
      duration: '15m',
    });
    expect(adaExtend.status).toBe(403);

    const secrets = await fileRequest(b, alice, { role: 'prod-secrets', reason: 'rotate' });
    const l = await signedIn(lee, secrets);
    await send(l.jar, `${page(secrets)}/review`, {
      _csrf: csrfOf(l.html),
      fingerprint: fingerprintOf(l.html),
      decision: 'approve',
      comment: 'ok',
    });
    const k = await signedIn(KIM, secrets);
    const kim = await send(k.jar, `${page(secrets)}/review`, {
      _csrf: csrfOf(k.html),
      fingerprint: fingerprintOf(k.html),
      decision: 'approve',
      comment: 'me too',
    });
    expect(kim.status).toBe(403);
    expect(kim.text).toContain('0 of 1 from group:security');
    expect((await row(secrets)).state).toBe('pending');
  });
});
