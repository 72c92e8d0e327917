import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest, CredentialResponse, MeResponse } from '../../src/api/schemas.js';
import { parseStepUpChallenge } from '../../src/api/step-up.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { type HostileKind, startTestIssuer } from '../support/test-issuer.js';
import { actor, file, POLICY, people } from './helpers.js';

/**
 * Who the broker believes: bearer tokens verified against the identity provider's JWKS with
 * pinned algorithms, issuer, audience, type and expiry; step-up (RFC 9470) for reviews and for
 * roles that ask for it; no self-review by any route. Every hostile token is refused with 401 and
 * changes nothing.
 */

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker({ policy: POLICY, start: { jwksCooldownMs: 0 } });
});
afterAll(async () => b?.close());

const MIN = 60_000;
const now = () => Math.floor(b.clock.now() / 1000);

async function requestCount(): Promise<number> {
  const rows = (await rawSql(b.dbUrl, 'select count(*) as n from requests')) as { n: number }[];
  return Number(rows[0]!.n);
}

describe('bearer tokens', () => {
  it('asks for a token when there is none, with an RFC 6750 challenge', async () => {
    const r = await http(b.url, 'GET', '/v1/me');
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({
      error: { code: 'unauthenticated', hint: expect.stringContaining('jitctl login') },
    });
    expect(r.headers['www-authenticate']).toBe('Bearer realm="jitctl"');
    const basic = await http(b.url, 'GET', '/v1/me', {
      headers: { authorization: 'Basic YWxpY2U6cHc=' },
    });
    expect(basic.status).toBe(401);
  });

  it('accepts an ID token (RS256 or ES256) and derives identity from iss + sub', async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const token = await b.issuer.token(people.alice, { alg });
      const r = await http<MeResponse>(b.url, 'GET', '/v1/me', { token });
      expect(r.status, r.text).toBe(200);
      expect(r.body).toEqual({
        iss: b.issuer.issuer,
        sub: 'alice-sub',
        name: 'Alice',
        email: 'alice@example.com',
        groups: ['developers'],
        requestable: ['prod-deploy', 'two-person', 'self-service'],
        reviewable: [],
        auditor: false,
      });
    }
  });

  it('accepts a JWT access token whose audience is the broker (typ at+jwt)', async () => {
    const token = await b.issuer.token(people.lee, { aud: b.url, typ: 'at+jwt' });
    const r = await http<MeResponse>(b.url, 'GET', '/v1/me', { token });
    expect(r.status, r.text).toBe(200);
    expect(r.body.reviewable).toEqual([
      'prod-deploy',
      'two-person',
      'self-service',
      'lead-escalation',
      'by-name',
    ]);
  });

  const hostile: [HostileKind, RegExp][] = [
    ['alg-none', /algorithm|not accepted/],
    ['hs256-with-public-key', /not accepted|algorithm/],
    ['unknown-kid', /key the identity provider does not publish/],
    ['wrong-key-known-kid', /signature does not verify/],
    ['wrong-iss', /does not trust/],
    ['wrong-aud', /another audience/],
    ['expired', /expired/],
    ['no-exp', /"exp" claim/],
    ['tampered', /signature does not verify/],
    ['typ-credential', /credential/],
    ['not-a-jwt', /not a JWT/],
  ];

  it.each(hostile)(
    'refuses a hostile token (%s) with 401 and changes nothing',
    async (kind, why) => {
      // The hostile tokens claim leads and admins, so success would be visible.
      const pending = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'x' });
      const before = await requestCount();
      const token = await b.issuer.hostile(kind, {
        ...people.mallory,
        groups: ['leads', 'developers', 'admins', 'auditors'],
      });
      const me = await http(b.url, 'GET', '/v1/me', { token });
      expect(me.status).toBe(401);
      expect(me.body).toMatchObject({
        error: { code: 'unauthenticated', message: expect.stringMatching(why) },
      });
      expect(me.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
      const create = await http(b.url, 'POST', '/v1/requests', {
        token,
        body: { role: 'self-service' },
      });
      expect(create.status).toBe(401);
      const review = await http(b.url, 'POST', `/v1/requests/${pending.id}/reviews`, {
        token,
        body: { decision: 'approve' },
      });
      expect(review.status).toBe(401);
      const audit = await http(b.url, 'GET', '/v1/audit', { token });
      expect(audit.status).toBe(401);
      expect(await requestCount()).toBe(before);
      const still = await actor(b, people.alice).get<AccessRequest>(`/v1/requests/${pending.id}`);
      expect(still.body.state).toBe('pending');
      expect(still.body.reviews).toEqual([]);
    },
  );

  it('never accepts a credential it minted as a sign-in token', async () => {
    const alice = actor(b, people.alice);
    const req = await file(alice, { role: 'self-service' });
    const cred = await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
    expect(cred.status).toBe(200);
    const r = await http(b.url, 'GET', '/v1/me', { token: cred.body.token });
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: { message: expect.stringContaining('credential') } });
    const create = await http(b.url, 'POST', '/v1/requests', {
      token: cred.body.token,
      body: { role: 'self-service' },
    });
    expect(create.status).toBe(401);
  });

  it('follows the identity provider rotating its keys (JWKS refetched on an unknown kid)', async () => {
    const before = await http(b.url, 'GET', '/v1/me', { token: await b.issuer.token(people.bob) });
    expect(before.status).toBe(200);
    const fetches = b.issuer.jwksFetches();
    await b.issuer.rotate();
    const token = await b.issuer.token(people.bob);
    const r = await http(b.url, 'GET', '/v1/me', { token });
    expect(r.status, r.text).toBe(200);
    expect(b.issuer.jwksFetches()).toBeGreaterThan(fetches);
    // A key the provider has not published is still refused.
    await b.issuer.rotate({ publish: false });
    const early = await http(b.url, 'GET', '/v1/me', { token: await b.issuer.token(people.bob) });
    expect(early.status).toBe(401);
    b.issuer.publishPending();
    const later = await http(b.url, 'GET', '/v1/me', { token: await b.issuer.token(people.bob) });
    expect(later.status).toBe(200);
  });

  it('answers 503 (not 500, not 401) while the identity provider is unreachable', async () => {
    const issuer = await startTestIssuer();
    issuer.setDown(true);
    const other = await startTestBroker({ policy: POLICY, issuer });
    try {
      const token = await issuer.token(people.alice);
      const r = await http(other.url, 'GET', '/v1/me', { token });
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({
        error: { code: 'unavailable', message: expect.stringContaining(issuer.issuer) },
      });
      const config = await http(other.url, 'GET', '/v1/config');
      expect(config.status).toBe(503);
      issuer.setDown(false);
      // Discovery failures are retried at most once a second.
      let ok = 0;
      for (let i = 0; i < 50 && ok !== 200; i++) {
        await new Promise((res) => setTimeout(res, 100));
        ok = (await http(other.url, 'GET', '/v1/me', { token })).status;
      }
      expect(ok).toBe(200);
    } finally {
      await other.close();
      await issuer.close();
    }
  });

  it('answers 503 (not 401) while only its key endpoint fails, and recovers', async () => {
    // jose reports a JWKS answering 500 as a bare JOSEError; that is the provider's fault, not the token's.
    const issuer = await startTestIssuer();
    issuer.failJwks(true);
    const other = await startTestBroker({ policy: POLICY, issuer });
    try {
      const token = await issuer.token(people.alice);
      const r = await http(other.url, 'GET', '/v1/me', { token });
      expect(r.status, r.text).toBe(503);
      expect(r.body).toMatchObject({
        error: { code: 'unavailable', message: expect.stringContaining(issuer.issuer) },
      });
      issuer.failJwks(false);
      const ok = await http(other.url, 'GET', '/v1/me', { token });
      expect(ok.status, ok.text).toBe(200);
    } finally {
      await other.close();
      await issuer.close();
    }
  });
});

describe('step-up (RFC 9470)', () => {
  const challengeOf = (h: string | string[] | undefined) =>
    parseStepUpChallenge(Array.isArray(h) ? h[0] : h);

  it('a role with step_up needs acr mfa within max_age to be requested', async () => {
    const cases = [
      { acr: 'pwd', auth_time: now() },
      { acr: null, auth_time: now() },
      { acr: 'unheard-of', auth_time: now() },
      { acr: 'mfa', auth_time: now() - 10 * 60 },
      { acr: 'mfa', auth_time: null },
    ];
    for (const c of cases) {
      const before = await requestCount();
      const a = actor(b, { ...people.alice, ...c });
      const r = await a.post('/v1/requests', { role: 'prod-deploy', reason: 'x' });
      expect(r.status, JSON.stringify(c)).toBe(401);
      expect(r.body).toMatchObject({ error: { code: 'insufficient_user_authentication' } });
      expect(challengeOf(r.headers['www-authenticate'])).toMatchObject({
        acrValues: 'mfa',
        maxAge: 300,
      });
      expect(await requestCount()).toBe(before);
    }
    const ok = await actor(b, { ...people.alice, acr: 'mfa', auth_time: now() - 60 }).post(
      '/v1/requests',
      { role: 'prod-deploy', reason: 'x' },
    );
    expect(ok.status).toBe(201);
    // A role without step_up takes a password-only sign-in.
    const plain = await actor(b, { ...people.alice, acr: 'pwd' }).post('/v1/requests', {
      role: 'two-person',
    });
    expect(plain.status).toBe(201);
  });

  it('every review needs fresh MFA (review_step_up), even for roles without step_up', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    for (const c of [
      { acr: 'pwd', auth_time: now() },
      { acr: 'mfa', auth_time: now() - 6 * 60 },
    ]) {
      const r = await actor(b, { ...people.lee, ...c }).post(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      });
      expect(r.status).toBe(401);
      const ch = challengeOf(r.headers['www-authenticate']);
      expect(ch).toMatchObject({ acrValues: 'mfa', maxAge: 300 });
      expect(ch?.description).toBeTruthy();
    }
    const state = await actor(b, people.alice).get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(state.body.reviews).toEqual([]);
    const ok = await actor(b, { ...people.lee, acr: 'mfa', auth_time: now() }).post<AccessRequest>(
      `/v1/requests/${req.id}/reviews`,
      { decision: 'approve' },
    );
    expect(ok.status).toBe(200);
    expect(ok.body.reviews).toHaveLength(1);
  });

  it('checks eligibility before asking for step-up (no pointless MFA prompt)', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    const r = await actor(b, { ...people.mallory, acr: 'pwd' }).post(
      `/v1/requests/${req.id}/reviews`,
      {
        decision: 'approve',
      },
    );
    expect(r.status).toBe(403);
    b.clock.advance(0);
  });
});

describe('self-review', () => {
  it('is refused whatever the token says about groups, names or emails', async () => {
    const lee = actor(b, people.lee);
    const req = await file(lee, { role: 'lead-escalation' });
    const attempts = [
      people.lee,
      { ...people.lee, groups: ['leads', 'admins'], name: 'Not Lee', email: 'other@example.com' },
    ];
    for (const p of attempts) {
      for (const decision of ['approve', 'deny'] as const) {
        const r = await actor(b, p).post(`/v1/requests/${req.id}/reviews`, { decision });
        expect(r.status).toBe(403);
        expect(r.body).toMatchObject({ error: { code: 'self_review' } });
      }
    }
    const state = await lee.get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(state.body).toMatchObject({ state: 'pending', reviews: [] });
    const byLin = await actor(b, people.lin).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(byLin.body.state).toBe('approved');
  });

  it('is refused for a requester who is also an approver of a role they requested', async () => {
    const dual = { sub: 'dual-sub', name: 'Dual', groups: ['developers', 'leads'] };
    const req = await file(actor(b, dual), { role: 'two-person' });
    const r = await actor(b, dual).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: { code: 'self_review' } });
  });

  it('reviewers outside the approvers get 403 naming who may review', async () => {
    const req = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'x' });
    for (const p of [people.bob, people.ada, people.root, people.mallory]) {
      const r = await actor(b, p).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({
        error: { code: 'forbidden', hint: expect.stringContaining('group:leads') },
      });
    }
  });
});

describe('user: principals', () => {
  it('match the subject, or the email unless the token says it is unverified', async () => {
    const carol = actor(b, people.carol);
    const req = await file(carol, { role: 'by-name' });
    expect(req.approvers).toEqual(['user:lee-sub']);
    const unverified = await actor(b, { ...people.carol, email_verified: false }).post(
      '/v1/requests',
      {
        role: 'by-name',
      },
    );
    expect(unverified.status).toBe(403);
    const byLin = await actor(b, people.lin).post(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(byLin.status).toBe(403);
    const byLee = await actor(b, people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(byLee.body.state).toBe('approved');
    b.clock.advance(MIN);
  });
});
