import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest, CredentialResponse } from '../../src/api/schemas.js';
import type { RequestEvent } from '../../src/server/requests/service.js';
import { type Dialect, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import type { Person } from '../support/test-issuer.js';
import { actor, file, people } from './helpers.js';

/**
 * The lifecycle beyond request/approve, through the API on SQLite and PostgreSQL: extending a
 * live grant, a scheduled start, break-glass with its review afterwards, multi-party approvals,
 * approval rules (ticket, on call, always-deny), comments reviewers must give, and the cap on
 * pending requests. Each with its audit events, and the refusals a user or an attacker would meet.
 */

const MIN = 60_000;
const sec = { sub: 'sec-sub', name: 'Sec', groups: ['security'] } satisfies Person;
const both = { sub: 'both-sub', name: 'Both', groups: ['leads', 'security'] } satisfies Person;

const onCallDir = mkdtempSync(join(tmpdir(), 'jitctl-oncall-'));
const onCallFile = join(onCallDir, 'oncall.txt');
writeFileSync(onCallFile, '# primary this week\nbob@example.com\n');

const POLICY = `
max_pending: 2
on_call: { source: ${onCallFile}, refresh: 10s }
roles:
  prod:
    requesters: [group:developers]
    approvers: [group:leads, group:security]
    approvals: 1
    max_duration: 2h
    pending_ttl: 1h
    extend: { max_total: 1h, require_reason: true }
    break_glass: { review_within: 24h, max_per_week: 2 }
    credential: { audience: https://k8s.example.com }
  quick-extend:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    extend: { max_total: 30m, approvals: 0 }
    credential: { audience: https://q.example.com }
  no-extend:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    credential: { audience: https://n.example.com }
  two-party:
    requesters: [group:developers]
    approvers: [group:leads, group:security]
    approvals: { group:leads: 1, group:security: 1 }
    max_duration: 1h
    max_pending: 5
    credential: { audience: https://t.example.com }
  ruled:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    max_duration: 2h
    max_pending: 10
    rules:
      - { name: incident, decision: approve, ticket: "INC-[0-9]+", max_duration: 30m }
      - { name: on-call, decision: approve, on_call: true }
    credential: { audience: https://r.example.com }
  closed:
    requesters: [group:developers]
    approvers: [group:leads]
    rules:
      - { name: frozen, decision: deny }
    max_duration: 1h
    credential: { audience: https://c.example.com }
  justified:
    requesters: [group:developers]
    approvers: [group:leads]
    require_review_comment: true
    max_duration: 1h
    credential: { audience: https://j.example.com }
`;

async function auditOf(
  b: TestBroker,
  id: string,
): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const rows = (await rawSql(
    b.dbUrl,
    `select type, data from audit_events where request_id = '${id}' order by seq`,
  )) as { type: string; data: string }[];
  return rows.map((r) => ({ type: r.type, data: JSON.parse(r.data) }));
}
const types = async (b: TestBroker, id: string) => (await auditOf(b, id)).map((e) => e.type);

describe.each<Dialect>(['sqlite', 'postgres'])('the lifecycle on %s', (dialect) => {
  let b: TestBroker;
  const events: RequestEvent[] = [];
  beforeAll(async () => {
    b = await startTestBroker({
      policy: POLICY,
      dialect,
      start: { sweepIntervalMs: 100, onEvent: (e) => events.push(e) },
    });
  });
  afterAll(async () => b?.close());
  const as = (p: Person) => actor(b, p);
  const alice = () => as(people.alice);

  async function approved(role: string, body: object = {}): Promise<AccessRequest> {
    const req = await file(alice(), { role, reason: 'r', ...body });
    if (req.state === 'approved') return req;
    const r = await as(people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(r.status, r.text).toBe(200);
    return r.body;
  }

  describe('extend', () => {
    it('is reviewed like a request; only the end moves; the ETag changes; audited', async () => {
      const grant = await approved('prod', { duration: '30m' });
      const before = await alice().get<AccessRequest>(`/v1/requests/${grant.id}`);
      const noReason = await alice().post(`/v1/requests/${grant.id}/extend`, { duration: '30m' });
      expect(noReason.status).toBe(400);
      expect(noReason.body).toMatchObject({ error: { code: 'reason_required' } });
      const ext = await alice().post<AccessRequest>(`/v1/requests/${grant.id}/extend`, {
        duration: '30m',
        reason: 'migration still running',
      });
      expect(ext.status, ext.text).toBe(200);
      expect(ext.body).toMatchObject({
        state: 'approved',
        expires_at: grant.expires_at,
        awaiting: ['extension_review'],
        extension: { round: 1, state: 'pending', duration: '30m', approvals_required: 1 },
      });
      // A retry of the same ask is the same extension; a different one waits for this one.
      const again = await alice().post<AccessRequest>(`/v1/requests/${grant.id}/extend`, {
        duration: '30m',
        reason: 'migration still running',
      });
      expect(again.status).toBe(200);
      const other = await alice().post(`/v1/requests/${grant.id}/extend`, {
        duration: '10m',
        reason: 'x',
      });
      expect(other.status).toBe(409);
      // The grant keeps working meanwhile.
      const mint = await alice().post<CredentialResponse>(`/v1/requests/${grant.id}/credential`);
      expect(mint.status).toBe(200);
      expect(mint.body.grant_expires_at).toBe(grant.expires_at);
      expect(Date.parse(mint.body.expires_at)).toBeLessThanOrEqual(Date.parse(grant.expires_at));
      // No self-review; an approval naming the request's fingerprint is not one of the extension.
      const self = await alice().post(`/v1/requests/${grant.id}/reviews`, { decision: 'approve' });
      expect(self.status).toBe(403);
      const stale = await as(people.lin).post(`/v1/requests/${grant.id}/reviews`, {
        decision: 'approve',
        fingerprint: grant.fingerprint,
      });
      expect(stale.status).toBe(409);
      expect(stale.body).toMatchObject({ error: { code: 'fingerprint_mismatch' } });
      const ok = await as(people.lin).post<AccessRequest>(`/v1/requests/${grant.id}/reviews`, {
        decision: 'approve',
        fingerprint: ext.body.extension!.fingerprint,
      });
      expect(ok.status, ok.text).toBe(200);
      expect(Date.parse(ok.body.expires_at) - Date.parse(grant.expires_at)).toBe(30 * MIN);
      expect(ok.body).toMatchObject({ extended: '30m', awaiting: [], reviews: grant.reviews });
      expect(ok.body.extension).toMatchObject({
        state: 'approved',
        reviews: [{ decision: 'approve' }],
      });
      const after = await alice().get<AccessRequest>(`/v1/requests/${grant.id}`);
      expect(after.headers.etag).not.toBe(before.headers.etag);
      const fresh = await alice().post<CredentialResponse>(`/v1/requests/${grant.id}/credential`);
      // A fresh credential belongs to the longer grant; it lasts the role's credential.ttl inside it.
      expect(fresh.body.grant_expires_at).toBe(ok.body.expires_at);
      expect(Date.parse(fresh.body.expires_at)).toBeLessThanOrEqual(Date.parse(ok.body.expires_at));
      expect(await types(b, grant.id)).toEqual([
        'request.created',
        'review.recorded',
        'request.approved',
        'extension.requested',
        'credential.minted',
        'review.recorded',
        'extension.approved',
        'credential.minted',
      ]);
      // max_total 1h: 30m used, 40m more is refused with how much is left.
      const over = await alice().post(`/v1/requests/${grant.id}/extend`, {
        duration: '40m',
        reason: 'x',
      });
      expect(over.status).toBe(400);
      expect(over.body).toMatchObject({ error: { hint: 'ask for 30m or less' } });
    });

    it('denied, withdrawn, lapsing with a revoked grant; approved at once with approvals: 0', async () => {
      const grant = await approved('prod');
      await alice().post(`/v1/requests/${grant.id}/extend`, { duration: '10m', reason: 'x' });
      const denied = await as(people.lee).post<AccessRequest>(`/v1/requests/${grant.id}/reviews`, {
        decision: 'deny',
        comment: 'finish tomorrow',
      });
      expect(denied.body).toMatchObject({ state: 'approved', expires_at: grant.expires_at });
      expect(denied.body.extension).toMatchObject({ state: 'denied' });
      await alice().post(`/v1/requests/${grant.id}/extend`, { duration: '10m', reason: 'y' });
      const withdrawn = await alice().post<AccessRequest>(`/v1/requests/${grant.id}/cancel`);
      expect(withdrawn.body).toMatchObject({
        state: 'approved',
        extension: { round: 2, state: 'cancelled' },
      });
      await alice().post(`/v1/requests/${grant.id}/extend`, { duration: '10m', reason: 'z' });
      const revoked = await as(people.lee).post<AccessRequest>(`/v1/requests/${grant.id}/revoke`);
      expect(revoked.body).toMatchObject({
        state: 'revoked',
        extension: { round: 3, state: 'expired' },
      });
      expect((await types(b, grant.id)).slice(-2)).toEqual([
        'request.revoked',
        'extension.expired',
      ]);

      const quick = await approved('quick-extend', { duration: '10m' });
      const q = await alice().post<AccessRequest>(`/v1/requests/${quick.id}/extend`, {
        duration: '20m',
      });
      expect(Date.parse(q.body.expires_at) - Date.parse(quick.expires_at)).toBe(20 * MIN);
      expect(await types(b, quick.id)).toEqual([
        'request.created',
        'request.approved',
        'extension.requested',
        'extension.approved',
      ]);
    });

    it('refuses what it must', async () => {
      const none = await approved('no-extend');
      const r1 = await alice().post(`/v1/requests/${none.id}/extend`, { duration: '10m' });
      expect(r1.status).toBe(403);
      expect(r1.body).toMatchObject({
        error: { message: 'role no-extend does not allow extensions' },
      });
      const grant = await approved('quick-extend');
      const byBob = await as(people.bob).post(`/v1/requests/${grant.id}/extend`, {
        duration: '10m',
      });
      expect(byBob.status).toBe(403);
      const pending = await file(alice(), { role: 'prod', reason: 'r' });
      const early = await alice().post(`/v1/requests/${pending.id}/extend`, {
        duration: '10m',
        reason: 'x',
      });
      expect(early.status).toBe(409);
      for (const bad of [
        { duration: '10x' },
        { duration: '' },
        { duration: '10m', extra: 1 },
        {},
      ]) {
        const r = await alice().post(`/v1/requests/${grant.id}/extend`, bad);
        expect(r.status, JSON.stringify(bad)).toBe(400);
      }
      await alice().post(`/v1/requests/${pending.id}/cancel`);
    });
  });

  describe('scheduled start', () => {
    it('approvable now, usable from the start; the window counts from the start', async () => {
      const start = b.clock.now() + 30 * MIN;
      const req = await file(alice(), {
        role: 'prod',
        reason: 'release',
        duration: '1h',
        starts_at: new Date(start).toISOString(),
      } as never);
      expect(req).toMatchObject({ state: 'pending', starts_at: new Date(start).toISOString() });
      // The pending deadline counts from the start too.
      expect(Date.parse(req.expires_at)).toBe(start + 60 * MIN);
      const ok = await as(people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      });
      expect(ok.body).toMatchObject({ state: 'scheduled', awaiting: ['start'] });
      expect(Date.parse(ok.body.expires_at)).toBe(start + 60 * MIN);
      const early = await alice().post(`/v1/requests/${req.id}/credential`);
      expect(early.status).toBe(409);
      expect(early.body).toMatchObject({ error: { message: expect.stringMatching(/starts at/) } });
      b.clock.advance(31 * MIN);
      const mint = await alice().post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
      expect(mint.status, mint.text).toBe(200);
      expect(await types(b, req.id)).toEqual([
        'request.created',
        'review.recorded',
        'request.approved',
        'request.activated',
        'credential.minted',
      ]);
      // Removed from the requesters' group meanwhile: nothing more.
      const removed = actor(b, { ...people.alice, groups: [] });
      const refused = await removed.post(`/v1/requests/${req.id}/credential`);
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({
        error: { message: expect.stringContaining('no longer a requester') },
      });
    });

    it('the sweep opens the window by itself', async () => {
      const req = await file(alice(), {
        role: 'quick-extend',
        starts_at: new Date(b.clock.now() + 10 * MIN).toISOString(),
      } as never);
      expect(req.state).toBe('scheduled');
      b.clock.advance(11 * MIN);
      await expect
        .poll(async () => types(b, req.id), { timeout: 10_000 })
        .toContain('request.activated');
    });

    it('refuses starts in the past, too far ahead, or not RFC 3339', async () => {
      const now = b.clock.now();
      for (const [at, why] of [
        [new Date(now - 10 * MIN).toISOString(), /in the past/],
        [new Date(now + 8 * 24 * 60 * MIN).toISOString(), /more than 7d ahead/],
        ['14:00', /not an RFC 3339 time/],
        ['2025-13-45T99:00:00Z', /not an RFC 3339 time/],
      ] as const) {
        const r = await alice().post('/v1/requests', { role: 'prod', reason: 'r', starts_at: at });
        expect(r.status, at).toBe(400);
        expect(r.body).toMatchObject({
          error: { code: 'invalid_start', message: expect.stringMatching(why) },
        });
      }
    });
  });

  describe('break-glass', () => {
    it('approved at once, high priority, reviewed afterwards; limited per week', async () => {
      const noReason = await alice().post('/v1/requests', { role: 'prod', break_glass: true });
      expect(noReason.status).toBe(400);
      expect(noReason.body).toMatchObject({ error: { code: 'reason_required' } });
      const notAllowed = await alice().post('/v1/requests', {
        role: 'quick-extend',
        break_glass: true,
        reason: 'fire',
      });
      expect(notAllowed.status).toBe(403);

      const bg = await file(alice(), {
        role: 'prod',
        reason: 'checkout down',
        break_glass: true,
      } as never);
      expect(bg).toMatchObject({
        state: 'approved',
        awaiting: ['break_glass_review'],
        break_glass: { verdict: null, overdue: false },
      });
      expect((await alice().post(`/v1/requests/${bg.id}/credential`)).status).toBe(200);
      const audit = await auditOf(b, bg.id);
      expect(audit.map((e) => e.type)).toEqual([
        'request.created',
        'request.approved',
        'break_glass.used',
        'credential.minted',
      ]);
      expect(audit[2]!.data).toMatchObject({ priority: 'high', reason: 'checkout down' });
      expect(
        events.find((e) => e.type === 'break_glass.used' && e.request.id === bg.id),
      ).toMatchObject({
        priority: 'high',
      });
      // Nobody extends break-glass access; the user's own review is refused.
      expect(
        (await alice().post(`/v1/requests/${bg.id}/extend`, { duration: '5m', reason: 'x' }))
          .status,
      ).toBe(409);
      const self = await alice().post(`/v1/requests/${bg.id}/break-glass-review`, {
        verdict: 'acknowledge',
      });
      expect(self.status).toBe(403);
      const flagNoComment = await as(people.lee).post(`/v1/requests/${bg.id}/break-glass-review`, {
        verdict: 'flag',
      });
      expect(flagNoComment.status).toBe(400);
      const flagged = await as(people.lee).post<AccessRequest>(
        `/v1/requests/${bg.id}/break-glass-review`,
        {
          verdict: 'flag',
          comment: 'no incident was open',
        },
      );
      expect(flagged.status, flagged.text).toBe(200);
      expect(flagged.body.break_glass).toMatchObject({
        verdict: 'flagged',
        comment: 'no incident was open',
        reviewer: { sub: 'lee-sub' },
      });
      expect(flagged.body.awaiting).toEqual([]);
      const twice = await as(people.lin).post(`/v1/requests/${bg.id}/break-glass-review`, {
        verdict: 'acknowledge',
      });
      expect(twice.status).toBe(409);

      await file(alice(), { role: 'prod', reason: 'again', break_glass: true } as never);
      const third = await alice().post('/v1/requests', {
        role: 'prod',
        reason: 'x',
        break_glass: true,
      });
      expect(third.status).toBe(429);
      expect(third.body).toMatchObject({
        error: { code: 'rate_limited', message: expect.stringContaining('the limit is 2') },
      });
      expect(Number(third.headers['retry-after'])).toBeGreaterThan(6 * 24 * 3600);
      const list = await as(people.lee).get<{ items: AccessRequest[] }>(
        '/v1/requests?break_glass=flagged',
      );
      expect(list.body.items.map((i) => i.id)).toContain(bg.id);
      const bad = await as(people.lee).get('/v1/requests?break_glass=maybe');
      expect(bad.status).toBe(400);
    });

    it('unreviewed past its deadline: an overdue event once, and it shows in the overdue list', async () => {
      const bg = await file(as(people.bob), {
        role: 'prod',
        reason: 'db',
        break_glass: true,
      } as never);
      b.clock.advance(24 * 60 * MIN + MIN);
      await expect
        .poll(async () => types(b, bg.id), { timeout: 10_000 })
        .toContain('break_glass.overdue');
      const list = await as(people.lee).get<{ items: AccessRequest[] }>(
        '/v1/requests?break_glass=overdue',
      );
      expect(list.body.items.map((i) => i.id)).toContain(bg.id);
      const ack = await as(people.lee).post<AccessRequest>(
        `/v1/requests/${bg.id}/break-glass-review`,
        {
          verdict: 'acknowledge',
        },
      );
      expect(ack.status, ack.text).toBe(200);
      expect(ack.body.break_glass).toMatchObject({ verdict: 'acknowledged', overdue: false });
      expect((await types(b, bg.id)).filter((t) => t === 'break_glass.overdue')).toHaveLength(1);
    });
  });

  describe('approval rules', () => {
    it('multi-party: one from each group, one person counts once, progress per group', async () => {
      const req = await file(alice(), { role: 'two-party' });
      expect(req.approvals_by).toEqual([
        { from: 'group:leads', required: 1, approved: 0 },
        { from: 'group:security', required: 1, approved: 0 },
      ]);
      const first = await as(both).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      });
      expect(first.body.state).toBe('pending');
      const lee = await as(people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      });
      expect(lee.status, lee.text).toBe(200);
      expect(lee.body.state).toBe('approved');

      const two = await file(alice(), { role: 'two-party' });
      await as(people.lee).post(`/v1/requests/${two.id}/reviews`, { decision: 'approve' });
      const lin = await as(people.lin).post(`/v1/requests/${two.id}/reviews`, {
        decision: 'approve',
      });
      expect(lin.status).toBe(403);
      expect(lin.body).toMatchObject({
        error: { message: expect.stringContaining('0 of 1 from group:security') },
      });
      const s = await as(sec).post<AccessRequest>(`/v1/requests/${two.id}/reviews`, {
        decision: 'approve',
      });
      expect(s.body.state).toBe('approved');
      expect(s.body.approvals_by).toEqual([
        { from: 'group:leads', required: 1, approved: 1 },
        { from: 'group:security', required: 1, approved: 1 },
      ]);
    });

    it('decides by rule, audited with the rule: ticket and duration, on call, always deny', async () => {
      const inc = await file(alice(), { role: 'ruled', ticket: 'INC-42', duration: '20m' });
      expect(inc).toMatchObject({ state: 'approved', decided_by_rule: 'incident' });
      const audit = await auditOf(b, inc.id);
      expect(audit[1]).toMatchObject({ type: 'request.approved', data: { rule: 'incident' } });
      const long = await file(alice(), { role: 'ruled', ticket: 'INC-42', duration: '1h' });
      expect(long).toMatchObject({ state: 'pending', decided_by_rule: null });
      const fake = await file(alice(), { role: 'ruled', ticket: 'INC-42; drop', duration: '20m' });
      expect(fake.state).toBe('pending');
      const onCall = await file(as(people.bob), { role: 'ruled', duration: '1h' });
      expect(onCall).toMatchObject({ state: 'approved', decided_by_rule: 'on-call' });
      const closed = await file(alice(), { role: 'closed' });
      expect(closed).toMatchObject({ state: 'denied', decided_by_rule: 'frozen' });
      expect(await types(b, closed.id)).toEqual(['request.created', 'request.denied']);
      for (const r of [long, fake]) await alice().post(`/v1/requests/${r.id}/cancel`);
    });

    it('require_review_comment: a review without a comment is refused', async () => {
      const req = await file(alice(), { role: 'justified' });
      const bare = await as(people.lee).post(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      });
      expect(bare.status).toBe(400);
      expect(bare.body).toMatchObject({ error: { code: 'comment_required' } });
      const ok = await as(people.lee).post(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
        comment: 'matches the change ticket',
      });
      expect(ok.status).toBe(200);
    });
  });

  it('caps pending requests per person and role: 429, Retry-After until the oldest lapses, a metric', async () => {
    const carl = { sub: 'carl-sub', name: 'Carl', groups: ['developers'] } satisfies Person;
    const first = await file(as(carl), { role: 'prod', reason: 'a' });
    b.clock.advance(10 * MIN);
    await file(as(carl), { role: 'prod', reason: 'b' });
    const third = await as(carl).post('/v1/requests', { role: 'prod', reason: 'c' });
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({
      error: {
        code: 'rate_limited',
        message: 'you have 2 pending requests for prod; at most 2 may wait at once',
      },
    });
    const retry = Number(third.headers['retry-after']);
    const lapse = (Date.parse(first.expires_at) - b.clock.now()) / 1000;
    expect(Math.abs(retry - lapse)).toBeLessThan(2);
    // Another role, or another person, is not limited by it.
    expect((await as(carl).post('/v1/requests', { role: 'two-party' })).status).toBe(201);
    const metrics = await as(carl).get('/metrics');
    expect(metrics.text).toMatch(
      /jitctl_request_limit_refusals_total\{limit="max_pending",role="prod"\} 1/,
    );
    await as(carl).post(`/v1/requests/${first.id}/cancel`);
    expect((await as(carl).post('/v1/requests', { role: 'prod', reason: 'd' })).status).toBe(201);
  });

  it('ten filings at once by one person never pass the cap', async () => {
    const dora = { sub: 'dora-sub', name: 'Dora', groups: ['developers'] } satisfies Person;
    const token = await b.issuer.token(dora);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        actor(b, dora, token).post('/v1/requests', { role: 'prod', reason: `r${i}` }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(2);
    expect(results.filter((r) => r.status === 429)).toHaveLength(8);
  });
});
