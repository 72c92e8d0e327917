import { compactVerify, createLocalJWKSet, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCheckpoint } from '../../../src/api/audit-checkpoint.js';
import type { AuditCheckpoint, AuditPage } from '../../../src/api/schemas.js';
import {
  type Dialect,
  http,
  rawSql,
  startTestBroker,
  type TestBroker,
} from '../../support/broker.js';
import { actor, file, POLICY, people } from '../helpers.js';

/**
 * The broker's side of `jitctl audit tail --follow` and of checkpoints: `GET /v1/audit?wait=`
 * answers when something is appended (on this replica, or on another through PostgreSQL's
 * LISTEN), and `GET /v1/audit/checkpoint` signs the head with the broker's key.
 */

describe.each<Dialect>(['sqlite', 'postgres'])('GET /v1/audit?wait= on %s', (dialect) => {
  let b: TestBroker;
  beforeAll(async () => {
    // The safety-net poll is a minute: only a real wake-up answers these polls in time.
    b = await startTestBroker({
      policy: POLICY,
      dialect,
      start: { audit: { feedPollMs: 60_000 } },
    });
    await file(actor(b, people.alice), { role: 'self-service' });
  });
  afterAll(async () => b?.close());

  const head = async () =>
    Number(((await rawSql(b.dbUrl, 'select seq from audit_head')) as { seq: number }[])[0]!.seq);

  it('answers at once when events follow the cursor', async () => {
    const ada = actor(b, people.ada);
    const r = await ada.get<AuditPage>('/v1/audit?after=0&wait=30s');
    expect(r.status).toBe(200);
    expect(r.body.items.length).toBe(await head());
  });

  it('waits at the end of the log and answers as soon as an event is appended', async () => {
    const ada = actor(b, people.ada);
    const after = await head();
    const t0 = Date.now();
    const polling = ada.get<AuditPage>(`/v1/audit?after=${after}&wait=30s&with=requests`);
    const req = await file(actor(b, people.bob), { role: 'two-person', reason: 'wake up' });
    const r = await polling;
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.status).toBe(200);
    expect(r.body.items[0]).toMatchObject({
      seq: after + 1,
      type: 'request.created',
      request_id: req.id,
    });
    expect(r.body.requests).toEqual({
      [req.id]: {
        role: 'two-person',
        requester: { iss: b.issuer.issuer, sub: 'bob-sub', name: 'Bob' },
      },
    });
  });

  it('answers an empty page when the wait ends with nothing new', async () => {
    const r = await actor(b, people.ada).get<AuditPage>(`/v1/audit?after=${await head()}&wait=1s`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ items: [], next_after: null });
  });

  it('refuses bad parameters and non-auditors', async () => {
    const ada = actor(b, people.ada);
    for (const [q, msg] of [
      ['wait=soon', /wait/],
      ['with=everything', /`with` takes only `requests`/],
      ['after=-1', /`after` must be a whole number/],
      ['limit=5000', /`limit` must be a whole number from 1 to 1000/],
      ['follow=1', /unknown query parameter `follow`/],
    ] as const) {
      const r = await ada.get<{ error: { message: string } }>(`/v1/audit?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error.message).toMatch(msg);
    }
    const alice = await actor(b, people.alice).get('/v1/audit?wait=5s');
    expect(alice.status).toBe(403);
  });
});

describe('replicas on PostgreSQL', () => {
  it('an append on one replica wakes a tail waiting on another', async () => {
    const a = await startTestBroker({ policy: POLICY, dialect: 'postgres' });
    const other = await startTestBroker({
      policy: POLICY,
      dbUrl: a.dbUrl,
      issuer: a.issuer,
      start: { audit: { feedPollMs: 60_000 } },
    });
    try {
      await file(actor(a, people.alice), { role: 'self-service' });
      const seq = Number(
        ((await rawSql(a.dbUrl, 'select seq from audit_head')) as { seq: number }[])[0]!.seq,
      );
      const t0 = Date.now();
      const polling = actor(other, people.ada).get<AuditPage>(`/v1/audit?after=${seq}&wait=30s`);
      // Let the poll reach the other replica before the append (it answers at once otherwise).
      await vi.waitFor(async () => {
        const m = await http(other.url, 'GET', '/metrics');
        expect(m.text).toMatch(/jitctl_long_polls_waiting [1-9]/);
      });
      await file(actor(a, people.bob), { role: 'two-person' });
      const r = await polling;
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(r.body.items[0]!.seq).toBe(seq + 1);
    } finally {
      await other.close();
      await a.close();
    }
  });
});

describe('GET /v1/audit/checkpoint', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY, start: { audit: { checkpointIntervalMs: null } } });
    await file(actor(b, people.alice), { role: 'self-service' });
  });
  afterAll(async () => b?.close());

  it('signs the head with the broker key, once per head', async () => {
    const ada = actor(b, people.ada);
    const r = await ada.get<AuditCheckpoint>('/v1/audit/checkpoint');
    expect(r.status).toBe(200);
    const [h] = (await rawSql(b.dbUrl, 'select seq, hash from audit_head')) as {
      seq: number;
      hash: string;
    }[];
    expect(r.body).toMatchObject({ seq: Number(h!.seq), hash: h!.hash });
    // The broker's JWKS verifies it, and it says what it is.
    const jwks = await http<{ keys: object[] }>(b.url, 'GET', '/.well-known/jwks.json');
    const verified = await compactVerify(
      r.body.jws,
      createLocalJWKSet(jwks.body as Parameters<typeof createLocalJWKSet>[0]),
    );
    expect(JSON.parse(new TextDecoder().decode(verified.payload))).toEqual({
      iss: b.url,
      seq: Number(h!.seq),
      hash: h!.hash,
      signed_at: r.body.signed_at,
    });
    const header = decodeProtectedHeader(r.body.jws);
    expect(header).toMatchObject({ typ: 'jitctl-audit-checkpoint+jws', kid: r.body.kid });
    expect(header.jwk).not.toHaveProperty('d');
    expect((await openCheckpoint(r.body.jws)).kid).toBe(r.body.kid);
    // The same head: the same checkpoint. A new event: a new one.
    expect((await ada.get<AuditCheckpoint>('/v1/audit/checkpoint')).body).toEqual(r.body);
    await file(actor(b, people.alice), { role: 'self-service' });
    const next = await ada.get<AuditCheckpoint>('/v1/audit/checkpoint');
    expect(next.body.seq).toBeGreaterThan(r.body.seq);
    const stored = (await rawSql(b.dbUrl, 'select seq from audit_checkpoints order by seq')) as {
      seq: number;
    }[];
    expect(stored.map((s) => Number(s.seq))).toEqual([r.body.seq, next.body.seq]);
  });

  it('is for auditors only, and takes no parameters', async () => {
    expect((await actor(b, people.alice).get('/v1/audit/checkpoint')).status).toBe(403);
    expect((await actor(b, people.ada).get('/v1/audit/checkpoint?seq=1')).status).toBe(400);
  });

  it('is refused when the signature or payload is tampered with', async () => {
    const { body } = await actor(b, people.ada).get<AuditCheckpoint>('/v1/audit/checkpoint');
    const [h, p, s] = body.jws.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { seq: number };
    const forged = Buffer.from(JSON.stringify({ ...claims, seq: claims.seq + 1 })).toString(
      'base64url',
    );
    await expect(openCheckpoint(`${h}.${forged}.${s}`)).rejects.toThrow(
      /signature that does not verify/,
    );
    await expect(openCheckpoint('not.a.jws!')).rejects.toThrow(/not a compact JWS/);
  });
});

describe('checkpoints on a schedule', () => {
  it('one is made when the log has grown and the last is older than the interval', async () => {
    const b = await startTestBroker({
      policy: POLICY,
      start: { audit: { checkpointIntervalMs: 200 } },
    });
    try {
      await file(actor(b, people.alice), { role: 'self-service' });
      const count = async () =>
        ((await rawSql(b.dbUrl, 'select seq from audit_checkpoints')) as unknown[]).length;
      await vi.waitFor(async () => expect(await count()).toBeGreaterThan(0), { timeout: 10_000 });
      await file(actor(b, people.alice), { role: 'self-service' });
      const [h] = (await rawSql(b.dbUrl, 'select seq from audit_head')) as { seq: number }[];
      await vi.waitFor(
        async () => {
          const rows = (await rawSql(b.dbUrl, 'select max(seq) as m from audit_checkpoints')) as {
            m: number;
          }[];
          expect(Number(rows[0]!.m)).toBe(Number(h!.seq));
        },
        { timeout: 10_000 },
      );
    } finally {
      await b.close();
    }
  });
});
