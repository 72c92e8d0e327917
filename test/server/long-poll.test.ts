import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { http, startTestBroker, type TestBroker } from '../support/broker.js';
import { actor, file, POLICY, people } from './helpers.js';

/**
 * `GET /v1/requests/:id?wait=…`: held until the request changes, the wait ends, or the request's
 * own deadline passes. None of these tests measures time: a long poll that failed to wake would
 * hold for 60 s, past the test's timeout.
 */

const QUICK = `${POLICY}
  quick:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 1m
    max_duration: 1h
    pending_ttl: 2s
    credential:
      audience: https://quick.example.com
`;

const poll = (b: TestBroker, token: string, id: string, wait: string, etag?: string) =>
  http<AccessRequest>(b.url, 'GET', `/v1/requests/${id}?wait=${wait}`, {
    token,
    ...(etag ? { headers: { 'if-none-match': etag } } : {}),
  });

describe('long poll', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: QUICK });
  });
  afterAll(async () => b?.close());

  it('wakes when the request is approved', async () => {
    const alice = actor(b, people.alice);
    const req = await file(alice, { role: 'two-person' });
    const token = await b.issuer.token(people.alice);
    const waiting = poll(b, token, req.id, '60s');
    // The poll is registered before the first review: wait for the gauge to show it.
    await until(async () =>
      (await http(b.url, 'GET', '/metrics')).text.includes('jitctl_long_polls_waiting 1'),
    );
    await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
    const first = await waiting;
    expect(first.status).toBe(200);
    expect(first.body.state).toBe('pending');
    expect(first.body.reviews).toHaveLength(1);
    expect(first.headers.etag).toBe('"pending.1"');

    const second = poll(b, token, req.id, '60s', first.headers.etag as string);
    await until(async () =>
      (await http(b.url, 'GET', '/metrics')).text.includes('jitctl_long_polls_waiting 1'),
    );
    await actor(b, people.lin).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
    const done = await second;
    expect(done.body.state).toBe('approved');
    expect(done.headers.etag).toBe('"approved.2"');
  });

  it('answers at once when If-None-Match is already stale', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    const token = await b.issuer.token(people.alice);
    const r = await poll(b, token, req.id, '10m', '"pending.7"');
    expect(r.status).toBe(200);
    expect(r.headers.etag).toBe('"pending.0"');
    const weak = await poll(b, token, req.id, '50s', 'W/"approved.1", "denied.1"');
    expect(weak.status).toBe(200);
  });

  it('answers with the unchanged request when the wait ends', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    const r = await poll(b, await b.issuer.token(people.alice), req.id, '1s');
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('pending');
    expect(r.headers.etag).toBe('"pending.0"');
  });

  it('expires the request when its pending TTL passes during the wait', async () => {
    const req = await file(actor(b, people.alice), { role: 'quick' });
    const r = await poll(b, await b.issuer.token(people.alice), req.id, '60s');
    expect(r.body.state).toBe('expired');
  });

  it('refuses a bad wait and unknown parameters', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    const token = await b.issuer.token(people.alice);
    for (const wait of ['soon', '-1s', '0s', '']) {
      const r = await poll(b, token, req.id, wait);
      expect(r.status, wait).toBe(400);
      expect(r.body).toMatchObject({ error: { code: 'invalid_duration' } });
    }
    const other = await http(b.url, 'GET', `/v1/requests/${req.id}?timeout=5s`, { token });
    expect(other.status).toBe(400);
  });

  it('checks access before waiting', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    const r = await poll(b, await b.issuer.token(people.mallory), req.id, '60s');
    expect(r.status).toBe(403);
  });

  it('stops waiting when the client goes away', async () => {
    const req = await file(actor(b, people.alice), { role: 'two-person' });
    const token = await b.issuer.token(people.alice);
    const controller = new AbortController();
    const { request } = await import('undici');
    const pending = request(`${b.url}/v1/requests/${req.id}?wait=60s`, {
      headers: { authorization: `Bearer ${token}` },
      signal: controller.signal,
    }).catch(() => undefined);
    await until(async () =>
      (await http(b.url, 'GET', '/metrics')).text.includes('jitctl_long_polls_waiting 1'),
    );
    controller.abort();
    await pending;
    await until(async () =>
      (await http(b.url, 'GET', '/metrics')).text.includes('jitctl_long_polls_waiting 0'),
    );
  });

  it('answers waiting polls at once on shutdown', async () => {
    const other = await startTestBroker({ policy: QUICK });
    const req = await file(actor(other, people.alice), { role: 'two-person' });
    const waiting = poll(other, await other.issuer.token(people.alice), req.id, '60s');
    await until(async () =>
      (await http(other.url, 'GET', '/metrics')).text.includes('jitctl_long_polls_waiting 1'),
    );
    const closed = other.close();
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('pending');
    await closed;
  });
});

describe('long poll across PostgreSQL replicas', () => {
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    a = await startTestBroker({ policy: QUICK, dialect: 'postgres' });
    b = await startTestBroker({ policy: QUICK, dbUrl: a.dbUrl, issuer: a.issuer, clock: a.clock });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('a change committed on one replica wakes a poll waiting on another (LISTEN/NOTIFY)', async () => {
    const req = await file(actor(a, people.alice), { role: 'two-person' });
    const waiting = poll(a, await a.issuer.token(people.alice), req.id, '60s');
    await until(async () =>
      (await http(a.url, 'GET', '/metrics')).text.includes('jitctl_long_polls_waiting 1'),
    );
    const review = await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(review.status).toBe(200);
    const r = await waiting;
    expect(r.body.reviews).toHaveLength(1);
    expect(r.headers.etag).toBe('"pending.1"');
  });

  it('replicas share one audit chain and one signing key', async () => {
    const ja = await http<{ keys: { kid: string }[] }>(a.url, 'GET', '/.well-known/jwks.json');
    const jb = await http<{ keys: { kid: string }[] }>(b.url, 'GET', '/.well-known/jwks.json');
    expect(ja.body.keys.map((k) => k.kid)).toEqual(jb.body.keys.map((k) => k.kid));
    // Interleaved writes through both replicas extend one chain.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        file(actor(i % 2 ? a : b, people.bob), { role: 'self-service' }),
      ),
    );
    const { verifyAuditTable } = await import('../../src/server/audit/log.js');
    const result = await verifyAuditTable(a.broker.db);
    expect(result.ok).toBe(true);
    expect(result.events).toBeGreaterThanOrEqual(40);
  });
});

async function until(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('condition not met in time');
}
