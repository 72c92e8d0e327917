import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest, CredentialResponse } from '../../src/api/schemas.js';
import { type Dialect, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import type { Person } from '../support/test-issuer.js';
import { actor, file, POLICY, people } from './helpers.js';

/**
 * The request state machine (DESIGN.md "Request states") and its audit events, on SQLite and on a
 * real PostgreSQL server: every transition, who may cause it, what it records, and that
 * concurrent reviews produce exactly one transition.
 */

const MIN = 60_000;

async function auditTypes(b: TestBroker, requestId: string): Promise<string[]> {
  const rows = (await rawSql(
    b.dbUrl,
    `select type from audit_events where request_id = '${requestId}' order by seq`,
  )) as { type: string }[];
  return rows.map((r) => r.type);
}

async function count(b: TestBroker, sql: string): Promise<number> {
  const rows = (await rawSql(b.dbUrl, sql)) as { n: number | string }[];
  return Number(rows[0]?.n);
}

describe.each<Dialect>(['sqlite', 'postgres'])('request transitions on %s', (dialect) => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({
      policy: POLICY,
      dialect,
      settings: { admins: 'admins' },
      start: { sweepIntervalMs: 200 },
    });
  });
  afterAll(async () => b?.close());

  const as = (p: Person) => actor(b, p);

  it('approves after the required approval; the window starts at approval', async () => {
    const alice = as(people.alice);
    const req = await file(alice, { role: 'prod-deploy', duration: '30m', reason: 'hotfix INC-1' });
    expect(req).toMatchObject({
      state: 'pending',
      role: 'prod-deploy',
      duration: '30m',
      reason: 'hotfix INC-1',
      ticket: null,
      approvals_required: 1,
      approvers: ['group:leads'],
      requester: { iss: b.issuer.issuer, sub: 'alice-sub', name: 'Alice' },
      reviews: [],
    });
    expect(req.id).toMatch(/^req_[1-9A-HJ-NP-Za-km-z]{12}$/);
    expect(req.fingerprint).toMatch(/^[0-9a-f]{4}(-[0-9a-f]{4}){3}$/);
    expect(Date.parse(req.expires_at) - Date.parse(req.created_at)).toBe(60 * MIN);

    b.clock.advance(10 * MIN);
    const r = await as(people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
      comment: 'go',
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.state).toBe('approved');
    expect(r.body.reviews).toEqual([
      {
        reviewer: { iss: b.issuer.issuer, sub: 'lee-sub', name: 'Lee' },
        decision: 'approve',
        comment: 'go',
        at: expect.any(String),
      },
    ]);
    const approvedAt = Date.parse(r.body.reviews[0]!.at);
    expect(Date.parse(r.body.expires_at) - approvedAt).toBe(30 * MIN);
    expect(await auditTypes(b, req.id)).toEqual([
      'request.created',
      'review.recorded',
      'request.approved',
    ]);
  });

  it('needs N distinct approvers; a second approval by the same reviewer is refused', async () => {
    const req = await file(as(people.alice), { role: 'two-person' });
    const first = await as(people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(first.body.state).toBe('pending');
    expect(first.body.reviews).toHaveLength(1);
    const again = await as(people.lee).post(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'already_reviewed' } });
    const second = await as(people.lin).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(second.body.state).toBe('approved');
    expect(await auditTypes(b, req.id)).toEqual([
      'request.created',
      'review.recorded',
      'review.recorded',
      'request.approved',
    ]);
  });

  it('one deny denies by default; `denials: 2` needs two; terminal states are terminal', async () => {
    const one = await file(as(people.alice), { role: 'prod-deploy', reason: 'x' });
    const denied = await as(people.lee).post<AccessRequest>(`/v1/requests/${one.id}/reviews`, {
      decision: 'deny',
      comment: 'not now',
    });
    expect(denied.body.state).toBe('denied');
    for (const attempt of [
      () => as(people.lin).post(`/v1/requests/${one.id}/reviews`, { decision: 'approve' }),
      () => as(people.alice).post(`/v1/requests/${one.id}/cancel`),
      () => as(people.alice).post(`/v1/requests/${one.id}/revoke`),
      () => as(people.alice).post(`/v1/requests/${one.id}/credential`),
    ]) {
      const r = await attempt();
      expect(r.status, r.text).toBe(409);
      expect(r.body).toMatchObject({ error: { code: 'invalid_state' } });
    }
    expect(await auditTypes(b, one.id)).toEqual([
      'request.created',
      'review.recorded',
      'request.denied',
    ]);

    const two = await file(as(people.alice), { role: 'two-person' });
    const d1 = await as(people.lee).post<AccessRequest>(`/v1/requests/${two.id}/reviews`, {
      decision: 'deny',
    });
    expect(d1.body.state).toBe('pending');
    const d2 = await as(people.lin).post<AccessRequest>(`/v1/requests/${two.id}/reviews`, {
      decision: 'deny',
    });
    expect(d2.body.state).toBe('denied');
  });

  it('approves at once when the role needs no approvals', async () => {
    const req = await file(as(people.bob), { role: 'self-service', duration: '5m' });
    expect(req.state).toBe('approved');
    expect(Date.parse(req.expires_at) - Date.parse(req.created_at)).toBe(5 * MIN);
    expect(await auditTypes(b, req.id)).toEqual(['request.created', 'request.approved']);
    const c = await as(people.bob).post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
    expect(c.status).toBe(200);
  });

  it('cancel: requester only, pending only, and repeating it changes nothing', async () => {
    const req = await file(as(people.alice), { role: 'prod-deploy', reason: 'x' });
    const byLee = await as(people.lee).post(`/v1/requests/${req.id}/cancel`);
    expect(byLee.status).toBe(403);
    const byBob = await as(people.bob).post(`/v1/requests/${req.id}/cancel`);
    expect(byBob.status).toBe(403);
    const ok = await as(people.alice).post<AccessRequest>(`/v1/requests/${req.id}/cancel`);
    expect(ok.status).toBe(200);
    expect(ok.body.state).toBe('cancelled');
    const again = await as(people.alice).post<AccessRequest>(`/v1/requests/${req.id}/cancel`);
    expect(again.status).toBe(200);
    expect(again.body.state).toBe('cancelled');
    const review = await as(people.lee).post(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(review.status).toBe(409);
    expect(await auditTypes(b, req.id)).toEqual(['request.created', 'request.cancelled']);

    const approved = await file(as(people.alice), { role: 'self-service' });
    const late = await as(people.alice).post(`/v1/requests/${approved.id}/cancel`);
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ error: { code: 'invalid_state' } });
  });

  it('revoke: by requester, an approver or an admin; approved only; no credential after', async () => {
    for (const who of [people.alice, people.lin, people.root]) {
      const req = await file(as(people.alice), { role: 'self-service' });
      const r = await as(who).post<AccessRequest>(`/v1/requests/${req.id}/revoke`);
      expect(r.status, `${who.sub}: ${r.text}`).toBe(200);
      expect(r.body.state).toBe('revoked');
      const mint = await as(people.alice).post(`/v1/requests/${req.id}/credential`);
      expect(mint.status).toBe(409);
      expect(await auditTypes(b, req.id)).toEqual([
        'request.created',
        'request.approved',
        'request.revoked',
      ]);
    }
    const req = await file(as(people.alice), { role: 'self-service' });
    for (const who of [people.bob, people.ada, people.mallory]) {
      const r = await as(who).post(`/v1/requests/${req.id}/revoke`);
      expect(r.status, who.sub).toBe(403);
    }
    const pending = await file(as(people.alice), { role: 'prod-deploy', reason: 'x' });
    const early = await as(people.alice).post(`/v1/requests/${pending.id}/revoke`);
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ error: { hint: expect.stringContaining('cancel') } });
  });

  it('lists revoked requests until their window ends, to auditors (not to any developer)', async () => {
    const req = await file(as(people.alice), { role: 'self-service', duration: '20m' });
    await as(people.alice).post(`/v1/requests/${req.id}/revoke`);
    expect((await as(people.mallory).get('/v1/revocations')).status).toBe(403);
    const list = await as(people.ada).get<{
      items: { request_id: string; expires_at: string }[];
    }>('/v1/revocations');
    expect(list.status).toBe(200);
    const entry = list.body.items.find((i) => i.request_id === req.id);
    // No credential was minted: the entry lasts until the window would have ended.
    expect(entry).toMatchObject({ role: 'self-service', jtis: [], expires_at: req.expires_at });
    b.clock.advance(21 * MIN);
    const later = await as(people.ada).get<{ items: { request_id: string }[] }>('/v1/revocations');
    expect(later.body.items.find((i) => i.request_id === req.id)).toBeUndefined();
  });

  it('expires a pending request past its TTL on read, with an event; then it is terminal', async () => {
    const req = await file(as(people.alice), { role: 'prod-deploy', reason: 'x' });
    b.clock.advance(61 * MIN);
    const r = await as(people.alice).get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(r.body.state).toBe('expired');
    const review = await as(people.lee).post(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(review.status).toBe(409);
    expect(review.body).toMatchObject({ error: { code: 'invalid_state' } });
    const types = await auditTypes(b, req.id);
    expect(types).toEqual(['request.created', 'request.expired']);
    const rows = (await rawSql(
      b.dbUrl,
      `select actor, data from audit_events where request_id = '${req.id}' and type = 'request.expired'`,
    )) as { actor: string | null; data: string }[];
    expect(rows[0]!.actor).toBeNull();
    expect(JSON.parse(rows[0]!.data)).toMatchObject({ from: 'pending' });
  });

  it('expires an approved request when its window ends; no credential after', async () => {
    const req = await file(as(people.alice), { role: 'self-service', duration: '10m' });
    const ok = await as(people.alice).post(`/v1/requests/${req.id}/credential`);
    expect(ok.status).toBe(200);
    b.clock.advance(10 * MIN + 1000);
    const mint = await as(people.alice).post(`/v1/requests/${req.id}/credential`);
    expect(mint.status).toBe(409);
    expect(mint.body).toMatchObject({
      error: { code: 'invalid_state', message: expect.stringContaining('expired') },
    });
    expect(await auditTypes(b, req.id)).toEqual([
      'request.created',
      'request.approved',
      'credential.minted',
      'request.expired',
    ]);
  });

  it('the sweep expires requests nobody touches', async () => {
    const req = await file(as(people.alice), { role: 'prod-deploy', reason: 'x' });
    b.clock.advance(61 * MIN);
    const deadline = Date.now() + 20_000;
    let state = 'pending';
    while (state === 'pending' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const rows = (await rawSql(b.dbUrl, `select state from requests where id = '${req.id}'`)) as {
        state: string;
      }[];
      state = rows[0]!.state;
    }
    expect(state).toBe('expired');
  });

  it('100 concurrent approvals of one request produce exactly one approval', async () => {
    const req = await file(as(people.alice), { role: 'prod-deploy', reason: 'race' });
    const leads = Array.from({ length: 100 }, (_, i) => ({
      sub: `lead-${i}`,
      name: `Lead ${i}`,
      groups: ['leads'],
    }));
    const tokens = await Promise.all(leads.map((p) => b.issuer.token(p)));
    const results = await Promise.all(
      leads.map((p, i) =>
        actor(b, p, tokens[i]).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(99);
    expect(statuses.some((s) => s >= 500)).toBe(false);
    expect(await auditTypes(b, req.id)).toEqual([
      'request.created',
      'review.recorded',
      'request.approved',
    ]);
    expect(await count(b, `select count(*) as n from reviews where request_id = '${req.id}'`)).toBe(
      1,
    );
  });

  it('concurrent reviews by many leads of a two-approval role: two approvals, one transition', async () => {
    const req = await file(as(people.alice), { role: 'two-person' });
    const leads = Array.from({ length: 40 }, (_, i) => ({ sub: `pair-${i}`, groups: ['leads'] }));
    const tokens = await Promise.all(leads.map((p) => b.issuer.token(p)));
    const results = await Promise.all(
      leads.map((p, i) =>
        actor(b, p, tokens[i]).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' }),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(2);
    expect(results.filter((r) => r.status === 409)).toHaveLength(38);
    const types = await auditTypes(b, req.id);
    expect(types.filter((t) => t === 'request.approved')).toHaveLength(1);
    expect(types.filter((t) => t === 'review.recorded')).toHaveLength(2);
  });

  it('the same reviewer approving 20 times at once is recorded once', async () => {
    const req = await file(as(people.alice), { role: 'two-person' });
    const token = await b.issuer.token(people.lee);
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        actor(b, people.lee, token).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' }),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(
      results.filter(
        (r) =>
          r.status === 409 &&
          (r.body as { error: { code: string } }).error.code === 'already_reviewed',
      ),
    ).toHaveLength(19);
    expect(await count(b, `select count(*) as n from reviews where request_id = '${req.id}'`)).toBe(
      1,
    );
  });

  it('fails closed when the audit log refuses the append: 503, nothing changes or is minted', async () => {
    const alice = as(people.alice);
    const pending = await file(alice, { role: 'prod-deploy', reason: 'x' });
    const approved = await file(alice, { role: 'self-service' });
    const eventsBefore = await count(b, 'select count(*) as n from audit_events');
    const requestsBefore = await count(b, 'select count(*) as n from requests');

    await rawSql(
      b.dbUrl,
      dialect === 'sqlite'
        ? `create trigger audit_refuses before insert on audit_events
           begin select raise(abort, 'audit log is read-only'); end;`
        : `create function audit_refuses() returns trigger language plpgsql as
             $$ begin raise exception 'audit log is read-only'; end $$;
           create trigger audit_refuses before insert on audit_events
             for each row execute function audit_refuses();`,
    );
    try {
      const review = await as(people.lee).post(`/v1/requests/${pending.id}/reviews`, {
        decision: 'approve',
      });
      expect(review.status).toBe(503);
      expect(review.body).toMatchObject({ error: { code: 'unavailable' } });

      const mint = await alice.post(`/v1/requests/${approved.id}/credential`);
      expect(mint.status).toBe(503);
      expect(mint.text).not.toMatch(/eyJ/);
      expect(mint.body).toMatchObject({ error: { code: 'unavailable' } });

      const create = await alice.post('/v1/requests', { role: 'self-service' });
      expect(create.status).toBe(503);
      const cancel = await alice.post(`/v1/requests/${pending.id}/cancel`);
      expect(cancel.status).toBe(503);
      const revoke = await alice.post(`/v1/requests/${approved.id}/revoke`);
      expect(revoke.status).toBe(503);
    } finally {
      await rawSql(
        b.dbUrl,
        dialect === 'sqlite'
          ? 'drop trigger audit_refuses'
          : 'drop trigger audit_refuses on audit_events; drop function audit_refuses();',
      );
    }
    expect(await count(b, 'select count(*) as n from audit_events')).toBe(eventsBefore);
    expect(await count(b, 'select count(*) as n from requests')).toBe(requestsBefore);
    expect(
      await count(b, `select count(*) as n from reviews where request_id = '${pending.id}'`),
    ).toBe(0);
    const still = await alice.get<AccessRequest>(`/v1/requests/${pending.id}`);
    expect(still.body.state).toBe('pending');
    const stillApproved = await alice.get<AccessRequest>(`/v1/requests/${approved.id}`);
    expect(stillApproved.body.state).toBe('approved');

    // With the log writable again, the same review goes through.
    const retry = await as(people.lee).post<AccessRequest>(`/v1/requests/${pending.id}/reviews`, {
      decision: 'approve',
    });
    expect(retry.status).toBe(200);
    expect(retry.body.state).toBe('approved');
    const metrics = await as(people.alice).get('/metrics');
    expect(metrics.text).toMatch(/jitctl_audit_append_failures_total [1-9]/);
  });
});

describe.each<Dialect>(['sqlite', 'postgres'])("a review's answer on %s", (dialect) => {
  // A clock that stands still: two reviews in one millisecond.
  let at = Date.now();
  const clock = {
    now: () => at,
    advance: (ms: number) => {
      at += ms;
    },
  };
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY, dialect, clock });
  });
  afterAll(async () => b?.close());

  it('lists the reviews as a later read does, also when two share a millisecond', async () => {
    const as = (p: Person) => actor(b, p);
    const reviewers = (r: AccessRequest) => r.reviews.map((v) => v.reviewer.sub);
    for (const apart of [0, 1_000]) {
      const req = await file(as(people.alice), { role: 'two-person' });
      await as(people.lin).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
      clock.advance(apart);
      const second = await as(people.lee).post(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      });
      expect(second.status).toBe(200);
      const read = await as(people.alice).get(`/v1/requests/${req.id}`);
      // One millisecond: ordered by reviewer (lee before lin); a second apart: by time.
      expect(reviewers(second.body as AccessRequest)).toEqual(
        apart === 0 ? ['lee-sub', 'lin-sub'] : ['lin-sub', 'lee-sub'],
      );
      expect(second.body).toEqual(read.body);
    }
  });
});
