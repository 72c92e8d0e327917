import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RATE_LIMITS } from '../../src/server/limits/settings.js';
import { type HttpResult, http, startTestBroker, type TestBroker } from '../support/broker.js';
import { POLICY, people } from './helpers.js';

/**
 * Abuse limits against the real broker, as a script in a loop would meet them: each class answers
 * 429 with Retry-After in the API's error shape at its documented count, another caller or address
 * is not affected, the window passes (the broker's clock is moved, nothing sleeps), and
 * /metrics counts every refusal by door.
 */

const MIN = 60_000;
const FILE = { role: 'self-service', reason: 'loop' };

function expect429(r: HttpResult, maxSeconds: number): void {
  expect(r.status, r.text).toBe(429);
  const retryAfter = Number(r.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(maxSeconds);
}

async function metric(b: TestBroker, door: string): Promise<number> {
  const text = (await http(b.url, 'GET', '/metrics')).text;
  const m = new RegExp(`^jitctl_rate_limited_total\\{door="${door}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('with the default limits', () => {
  let b: TestBroker;
  beforeAll(async () => {
    // trust_proxy so the test can speak from several addresses through X-Forwarded-For.
    b = await startTestBroker({ policy: POLICY, settings: { trust_proxy: 'true' } });
  });
  afterAll(async () => b?.close());

  it('lets one caller file 60 requests a minute, then answers 429 until the window passes', async () => {
    const alice = await b.issuer.token(people.alice);
    const bob = await b.issuer.token(people.bob);
    const max = DEFAULT_RATE_LIMITS.writes!.max;
    for (let i = 0; i < max; i++) {
      const r = await http(b.url, 'POST', '/v1/requests', { token: alice, body: FILE });
      expect(r.status, `request ${i + 1}: ${r.text}`).toBe(201);
      expect(Number(r.headers['x-ratelimit-remaining'])).toBe(max - i - 1);
    }
    const refused = await http(b.url, 'POST', '/v1/requests', { token: alice, body: FILE });
    expect429(refused, 60);
    expect(refused.body).toEqual({
      error: {
        code: 'rate_limited',
        message: expect.stringMatching(
          /too many changes from you: at most 60 per 1m; try again in \d+ s/,
        ),
        hint: expect.stringContaining('per person or pipeline'),
      },
    });
    // Another person is not affected, and reads have their own budget.
    expect((await http(b.url, 'POST', '/v1/requests', { token: bob, body: FILE })).status).toBe(
      201,
    );
    expect((await http(b.url, 'GET', '/v1/me', { token: alice })).status).toBe(200);
    expect(await metric(b, 'writes')).toBe(1);

    b.clock.advance(MIN);
    expect((await http(b.url, 'POST', '/v1/requests', { token: alice, body: FILE })).status).toBe(
      201,
    );
  });

  it('caps failed sign-ins per address: after 100 bad tokens even a good one gets 429', async () => {
    const from = { 'x-forwarded-for': '203.0.113.7' };
    const other = { 'x-forwarded-for': '198.51.100.9' };
    const good = await b.issuer.token(people.alice);
    const bad = await b.issuer.hostile('wrong-key-known-kid', people.alice);
    const max = DEFAULT_RATE_LIMITS.auth_failures!.max;
    for (let i = 0; i < max; i++) {
      const r = await http(b.url, 'GET', '/v1/me', { token: bad, headers: from });
      expect(r.status, `bad token ${i + 1}`).toBe(401);
    }
    const before = await metric(b, 'auth_failures');
    const refused = await http(b.url, 'GET', '/v1/me', { token: bad, headers: from });
    expect429(refused, 300);
    expect(refused.body).toMatchObject({
      error: { code: 'rate_limited', message: expect.stringContaining('failed sign-ins') },
    });
    const goodRefused = await http(b.url, 'GET', '/v1/me', { token: good, headers: from });
    expect429(goodRefused, 300);
    // No token, no sign-in: monitoring and relying parties still reach the broker.
    for (const path of ['/healthz', '/readyz', '/metrics', '/.well-known/jwks.json', '/v1/config'])
      expect((await http(b.url, 'GET', path, { headers: from })).status, path).toBe(200);
    // Another address signs in as usual.
    expect((await http(b.url, 'GET', '/v1/me', { token: good, headers: other })).status).toBe(200);
    expect(await metric(b, 'auth_failures')).toBe(before + 2);

    b.clock.advance(5 * MIN);
    const fresh = await b.issuer.token(people.alice);
    expect((await http(b.url, 'GET', '/v1/me', { token: fresh, headers: from })).status).toBe(200);
  });

  it('counts refused token exchanges as failed sign-ins, answered in the token endpoint’s shape', async () => {
    const from = { 'x-forwarded-for': '192.0.2.44' };
    const form = (token: string) => ({
      raw: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      }).toString(),
      headers: { ...from, 'content-type': 'application/x-www-form-urlencoded' },
    });
    const max = DEFAULT_RATE_LIMITS.auth_failures!.max;
    for (let i = 0; i < max; i++) {
      const r = await http(b.url, 'POST', '/v1/token', form('not.a.token'));
      expect(r.status, `exchange ${i + 1}: ${r.text}`).toBe(400);
    }
    const refused = await http(b.url, 'POST', '/v1/token', form('not.a.token'));
    expect429(refused, 300);
    expect(refused.body).toEqual({
      error: 'rate_limited',
      error_description: expect.stringContaining('failed sign-ins from your address'),
    });
    b.clock.advance(5 * MIN);
    expect((await http(b.url, 'POST', '/v1/token', form('not.a.token'))).status).toBe(400);
  });
});

describe('with limits from the config', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({
      policy: POLICY,
      settings: {
        trust_proxy: 'true',
        rate_limits: JSON.stringify({
          reads: '5/1m',
          token: '3/30s',
          public: '4/1m',
          auth_failures: 'off',
        }),
      },
    });
  });
  afterAll(async () => b?.close());

  it('limits reads per caller, long polls included', async () => {
    const alice = await b.issuer.token(people.alice);
    const created = await http<{ id: string }>(b.url, 'POST', '/v1/requests', {
      token: alice,
      body: FILE,
    });
    expect(created.status).toBe(201);
    for (let i = 0; i < 4; i++)
      expect(
        (
          await http(b.url, 'GET', `/v1/requests/${created.body.id}?wait=30s`, {
            token: alice,
            // A stale ETag: the poll answers at once.
            headers: { 'if-none-match': '"stale"' },
          })
        ).status,
      ).toBe(200);
    expect((await http(b.url, 'GET', '/v1/me', { token: alice })).status).toBe(200);
    const refused = await http(b.url, 'GET', '/v1/me', { token: alice });
    expect429(refused, 60);
    expect(refused.body).toMatchObject({ error: { code: 'rate_limited' } });
    expect(
      (await http(b.url, 'GET', '/v1/me', { token: await b.issuer.token(people.bob) })).status,
    ).toBe(200);
    expect(await metric(b, 'reads')).toBe(1);
  });

  it('limits token exchanges per address, whatever they carry', async () => {
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const post = (ip: string) =>
      http(b.url, 'POST', '/v1/token', {
        raw: 'grant_type=password',
        headers: { ...headers, 'x-forwarded-for': ip },
      });
    for (let i = 0; i < 3; i++) expect((await post('192.0.2.1')).status).toBe(400);
    const refused = await post('192.0.2.1');
    expect429(refused, 30);
    expect(refused.body).toMatchObject({ error: 'rate_limited' });
    expect((await post('192.0.2.2')).status).toBe(400);
    expect(await metric(b, 'token')).toBe(1);
    b.clock.advance(30_000);
    expect((await post('192.0.2.1')).status).toBe(400);
  });

  it('limits unauthenticated doors per address but never health, readiness or metrics', async () => {
    const from = { 'x-forwarded-for': '192.0.2.99' };
    for (let i = 0; i < 4; i++)
      expect(
        (await http(b.url, 'GET', '/.well-known/openid-configuration', { headers: from })).status,
      ).toBe(200);
    expect429(await http(b.url, 'GET', '/.well-known/jwks.json', { headers: from }), 60);
    for (let i = 0; i < 20; i++)
      for (const path of ['/healthz', '/readyz', '/metrics'])
        expect((await http(b.url, 'GET', path, { headers: from })).status).toBe(200);
  });

  it('counts requests without a token as public, on signed-in routes and unknown paths too', async () => {
    const from = { 'x-forwarded-for': '192.0.2.98' };
    for (let i = 0; i < 2; i++)
      expect((await http(b.url, 'GET', '/v1/me', { headers: from })).status).toBe(401);
    expect((await http(b.url, 'POST', '/v1/requests', { headers: from, body: {} })).status).toBe(
      401,
    );
    const last = await http(b.url, 'GET', '/no/such/path', { headers: from });
    expect(last.status).toBe(404);
    expect(last.headers['x-ratelimit-remaining']).toBe('0');
    const refused = await http(b.url, 'GET', '/v1/me', { headers: from });
    expect429(refused, 60);
    expect(refused.body).toMatchObject({
      error: {
        code: 'rate_limited',
        message: expect.stringContaining('requests from your address'),
      },
    });
  });

  it('does not count failed sign-ins when that limit is off', async () => {
    const bad = await b.issuer.hostile('wrong-key-known-kid', people.carol);
    const from = { 'x-forwarded-for': '192.0.2.200' };
    for (let i = 0; i < 120; i++)
      expect((await http(b.url, 'GET', '/v1/me', { token: bad, headers: from })).status).toBe(401);
  });
});

describe('behind a proxy that is not trusted', () => {
  it('warns once that every client shares the proxy’s address', async () => {
    const b = await startTestBroker({ policy: POLICY });
    try {
      for (let i = 0; i < 3; i++)
        await http(b.url, 'GET', '/v1/config', { headers: { 'x-forwarded-for': '192.0.2.5' } });
      const warnings = b.logs().match(/X-Forwarded-For but trust_proxy is off/g) ?? [];
      expect(warnings).toHaveLength(1);
    } finally {
      await b.close();
    }
  });
});
