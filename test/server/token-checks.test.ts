import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest, MeResponse } from '../../src/api/schemas.js';
import { meetsStepUp } from '../../src/server/auth/step-up.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { type HostileKind, startTestIssuer, type TestIssuer } from '../support/test-issuer.js';
import { actor, file, POLICY, people } from './helpers.js';

/**
 * Defence in depth on tokens, against the real broker with hostile tokens minted by a real
 * issuer: several audiences without `azp` naming the broker's client (OIDC Core §3.1.3.7), `iat`
 * and `auth_time` in the future, non-canonical base64url (padding, unused bits set: the same
 * bytes, so the signature still verifies), a `crit` header; the same for pipelines' subject
 * tokens at `POST /v1/token`, whose refusals never tell an anonymous caller which issuers are
 * trusted or which audience is expected.
 */

const AUD = 'https://jit.example.com';
let b: TestBroker;
let ci: TestIssuer;

beforeAll(async () => {
  ci = await startTestIssuer({ clientId: 'ci' });
  b = await startTestBroker({
    policy: POLICY,
    settings: {
      trusted_issuers: JSON.stringify([
        {
          name: 'github-deploy',
          issuer: ci.issuer,
          audience: AUD,
          conditions: { repository: 'acme/app' },
          groups: ['ci-deployers'],
        },
      ]),
    },
  });
}, 60_000);
afterAll(async () => {
  await b?.close();
  await ci?.close();
});

const me = (token: string) =>
  http<MeResponse & { error: { code: string; message: string } }>(b.url, 'GET', '/v1/me', {
    token,
  });

describe('sign-in tokens', () => {
  const refusals: [HostileKind, RegExp][] = [
    ['multi-aud-no-azp', /several audiences and no authorized party \(azp\)/],
    ['multi-aud-other-azp', /several audiences and was issued to another client/],
    ['future-iat', /issued in the future \(iat\)/],
    ['future-auth-time', /signed in in the future \(auth_time\)/],
    ['padded-signature', /signature is padded with "="/],
    ['padded-payload', /payload is padded with "="/],
    ['non-canonical-signature', /signature is not canonical base64url/],
    ['crit-header', /marks extensions as critical \(crit: "urn:example:ext"\)/],
  ];
  it.each(refusals)('refuses %s with its own reason', async (kind, reason) => {
    const token = await b.issuer.hostile(kind, people.alice);
    const r = await me(token);
    expect(r.status, r.text).toBe(401);
    expect(r.body.error.code).toBe('unauthenticated');
    expect(r.body.error.message).toMatch(reason);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    expect(r.text).not.toContain(token.split('.')[2]!.slice(0, 40));
  });

  it('refuses a non-canonical spelling of a token it has already accepted (and cached)', async () => {
    const token = await b.issuer.token(people.alice);
    expect((await me(token)).status).toBe(200);
    // The same bytes spelled otherwise: padded, or with an unused trailing bit of the signature
    // set. The cache holds the accepted spelling only; these are checked, and refused.
    const [h, p, sig] = token.split('.') as [string, string, string];
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = ALPHABET.indexOf(sig.at(-1)!);
    const unusedBit = `${sig.slice(0, -1)}${ALPHABET[last ^ 1]}`;
    expect(Buffer.from(unusedBit, 'base64url')).toEqual(Buffer.from(sig, 'base64url'));
    for (const [variant, reason] of [
      [`${token}=`, /signature is padded with "="/],
      [`${h}.${p}.${unusedBit}`, /signature is not canonical base64url/],
    ] as const) {
      const r = await me(variant);
      expect(r.status, r.text).toBe(401);
      expect(r.body.error.message).toMatch(reason);
    }
    expect((await me(token)).status).toBe(200);
  });

  it('still accepts several audiences when azp is the broker’s client, and iat within the clock skew', async () => {
    const withAzp = await b.issuer.token(people.alice, {
      aud: [b.issuer.clientId, 'https://other.example.com'],
      extra: { azp: b.issuer.clientId },
    });
    expect((await me(withAzp)).status).toBe(200);
    const skewed = await b.issuer.token(people.alice, {
      extra: { iat: Math.floor(b.clock.now() / 1000) + 20 },
    });
    expect((await me(skewed)).status).toBe(200);
  });

  it('a sign-in dated in the future never passes step-up: the review is refused and nothing changes', async () => {
    const req = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'future' });
    const token = await b.issuer.hostile('future-auth-time', people.lee);
    const r = await http(b.url, 'POST', `/v1/requests/${req.id}/reviews`, {
      token,
      body: { decision: 'approve' },
    });
    expect(r.status, r.text).toBe(401);
    const [row] = (await rawSql(b.dbUrl, `select state from requests where id = '${req.id}'`)) as {
      state: string;
    }[];
    expect(row!.state).toBe('pending');
    const got = await actor(b, people.alice).get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(got.body.reviews).toEqual([]);
    // The rule itself: an auth_time an hour ahead is not "recent".
    const rule = { acr: 'mfa', maxAgeMs: 5 * 60_000 };
    const now = Date.now();
    expect(
      meetsStepUp({ acr: 'mfa', authTime: now / 1000 + 3600 }, rule, ['pwd', 'mfa'], now).ok,
    ).toBe(false);
  });
});

describe('pipelines’ subject tokens at POST /v1/token', () => {
  const exchange = (subject_token: string, extra: Record<string, string> = {}) =>
    http<{ error: string; error_description: string }>(b.url, 'POST', '/v1/token', {
      raw: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        ...extra,
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  const job = { sub: 'repo:acme/app:ref:refs/heads/main', acr: null, auth_time: null };
  const claims = { aud: AUD, extra: { repository: 'acme/app' } };

  it('accepts the canonical token (the baseline for the refusals below)', async () => {
    const r = await exchange(await ci.token(job, claims));
    expect(r.status, r.text).toBe(200);
  });

  const refusals: [HostileKind, RegExp][] = [
    ['future-iat', /issued in the future \(iat\)/],
    ['padded-signature', /signature is padded with "="/],
    ['padded-payload', /payload is padded with "="/],
    ['non-canonical-signature', /signature is not canonical base64url/],
    ['crit-header', /marks extensions as critical/],
  ];
  it.each(refusals)('refuses %s with its own reason', async (kind, reason) => {
    const r = await exchange(await ci.hostile(kind, job, claims));
    expect(r.status, r.text).toBe(400);
    expect(r.body.error).toBe('invalid_grant');
    expect(r.body.error_description).toMatch(reason);
  });

  it('never names the trusted issuers or the expected audience to an anonymous caller', async () => {
    const stranger = await b.issuer.token(people.alice, { aud: AUD });
    const untrusted = await exchange(stranger);
    expect(untrusted.body.error_description).toContain('are not trusted by this broker');
    const wrongAud = await exchange(
      await ci.token(job, { ...claims, aud: 'https://github.com/acme' }),
    );
    expect(wrongAud.body.error_description).toContain('wrong audience');
    const target = await exchange(await ci.token(job, claims), { audience: 'https://elsewhere' });
    expect(target.body.error).toBe('invalid_target');
    for (const r of [untrusted, wrongAud, target]) {
      expect(r.status).toBe(400);
      expect(r.text).not.toContain(ci.issuer);
      expect(r.text).not.toContain(AUD);
      expect(r.text).not.toContain(b.url);
    }
  });
});
