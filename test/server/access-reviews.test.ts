import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessReview, AccessReviewList } from '../../src/api/governance.js';
import type { AccessRequest, RoleSummary } from '../../src/api/schemas.js';
import { type Dialect, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { type WebhookReceiver, webhookReceiver } from '../support/receivers.js';
import type { Person } from '../support/test-issuer.js';
import { actor, file, people } from './helpers.js';

/**
 * Access reviews through the API on SQLite and PostgreSQL: who may start, read, decide and close
 * a campaign; a removal stops the person's next request at once with a message naming the
 * campaign, and lapses when the policy's entry list changes; nobody decides on their own access;
 * an overdue campaign notifies its reviewers through the outbox (the broker's clock moved on).
 */

const SECRET = 'whsec_MfKQ9r8GKYqrTwJm3aD8H0xNAUcJ3k2q';
const sec = { sub: 'sec-sub', name: 'Sec', groups: ['security'] } satisfies Person;
/** A reviewer who is also a developer: the developers' entry is their own access. */
const secdev = {
  sub: 'secdev-sub',
  name: 'Secdev',
  groups: ['security', 'developers'],
} satisfies Person;

const policy = (requesters: string) => `
roles:
  ro:
    requesters: ${requesters}
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    credential: { audience: https://ro.example.com }
  prod:
    requesters: [group:developers]
    approvers: [group:leads]
    max_duration: 1h
    credential: { audience: https://prod.example.com }
`;
const REQUESTERS = '[group:developers, user:carol@example.com]';

describe.each<Dialect>(['sqlite', 'postgres'])('access reviews on %s', (dialect) => {
  let b: TestBroker;
  let hooks: WebhookReceiver;
  beforeAll(async () => {
    hooks = await webhookReceiver({ secret: SECRET });
    b = await startTestBroker({
      policy: `${policy(REQUESTERS)}notify:\n  - webhook: ${hooks.url}\n    events: [access_review.started, access_review.reminder, access_review.overdue]\n`,
      dialect,
      settings: {
        auditors: 'auditors',
        admins: 'admins',
        webhook_secrets: JSON.stringify({ default: 'env:JIT_WEBHOOK_SECRET' }),
      },
      start: {
        env: { JIT_WEBHOOK_SECRET: SECRET },
        notify: { pollIntervalMs: 50, backoffMs: 20, maxBackoffMs: 200, timeoutMs: 5_000 },
        // The test moves the clock and ticks itself.
        sweepIntervalMs: 3_600_000,
      },
    });
  });
  afterAll(async () => {
    await b?.close();
    await hooks?.close();
  });
  const as = (p: Person) => actor(b, p);
  let campaign: AccessReview;

  it('only auditors and admins start one; bad input is a clear 400', async () => {
    await file(as(people.alice), { role: 'ro', reason: 'read logs' });
    await file(as(people.bob), { role: 'ro', reason: 'read logs' });
    const body = { roles: ['ro'], reviewers: ['group:security'], due: '14d' };
    const refused = await as(people.alice).post('/v1/access-reviews', body);
    expect(refused.status).toBe(403);
    const unknown = await as(people.ada).post('/v1/access-reviews', { ...body, roles: ['nope'] });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ error: { code: 'unknown_role' } });
    const badDue = await as(people.ada).post('/v1/access-reviews', { ...body, due: '10s' });
    expect(badDue.status).toBe(400);
    expect(badDue.text).toContain('`due`');
    const badReviewer = await as(people.ada).post('/v1/access-reviews', {
      ...body,
      reviewers: ['security'],
    });
    expect(badReviewer.status).toBe(400);

    const r = await as(people.ada).post<AccessReview>('/v1/access-reviews', {
      ...body,
      title: 'Q3 review',
    });
    expect(r.status, r.text).toBe(201);
    campaign = r.body;
    expect(campaign).toMatchObject({
      state: 'open',
      roles: ['ro'],
      reviewers: ['group:security'],
      title: 'Q3 review',
      can_decide: true,
      progress: { items: 4, kept: 0, removed: 0, undecided: 4 },
    });
    expect(campaign.id).toMatch(/^ar_/);
    const subjects = campaign.items!.map((i) => [i.kind, i.subject, i.uses]);
    expect(subjects).toEqual(
      expect.arrayContaining([
        ['entry', 'group:developers', 2],
        ['entry', 'user:carol@example.com', 0],
        ['person', 'Alice', 1],
        ['person', 'Bob', 1],
      ]),
    );
    const alice = campaign.items!.find((i) => i.subject === 'Alice')!;
    expect(alice.via).toEqual(['group:developers']);
    expect(alice.last_used_at).not.toBeNull();
    // The reviewers hear of it.
    await hooks.until((h) => h.some((x) => x.body.type === 'access_review.started'));
  });

  it('reviewers and auditors read it; others neither see nor read it', async () => {
    const list = await as(sec).get<AccessReviewList>('/v1/access-reviews');
    expect(list.body.items.map((c) => c.id)).toContain(campaign.id);
    const other = await as(people.mallory).get<AccessReviewList>('/v1/access-reviews');
    expect(other.status).toBe(200);
    expect(other.body.items).toEqual([]);
    const read = await as(people.mallory).get(`/v1/access-reviews/${campaign.id}`);
    expect(read.status).toBe(403);
    const decide = await as(people.alice).post(`/v1/access-reviews/${campaign.id}/decisions`, {
      item: 1,
      decision: 'keep',
    });
    expect(decide.status).toBe(403);
    const missing = await as(sec).get('/v1/access-reviews/ar_111111111111');
    expect(missing.status).toBe(404);
  });

  it('a decision is a review: it needs a fresh second factor (RFC 9470 challenge)', async () => {
    const weak = await as({ ...sec, acr: 'pwd' }).post(
      `/v1/access-reviews/${campaign.id}/decisions`,
      { item: 1, decision: 'keep' },
    );
    expect(weak.status).toBe(401);
    expect(String(weak.headers['www-authenticate'])).toContain('insufficient_user_authentication');
  });

  it('nobody decides on their own access', async () => {
    const devs = campaign.items!.find((i) => i.subject === 'group:developers')!;
    const own = await as(secdev).post(`/v1/access-reviews/${campaign.id}/decisions`, {
      item: devs.n,
      decision: 'keep',
    });
    expect(own.status).toBe(403);
    expect(own.text).toContain('your own access');
    const seen = await as(secdev).get<AccessReview>(`/v1/access-reviews/${campaign.id}`);
    expect(seen.body.items!.find((i) => i.n === devs.n)!.yours).toBe(true);
  });

  it('"remove" stops the person at once, naming the campaign; others are unaffected', async () => {
    const alice = campaign.items!.find((i) => i.subject === 'Alice')!;
    const noComment = await as(sec).post(`/v1/access-reviews/${campaign.id}/decisions`, {
      item: alice.n,
      decision: 'remove',
    });
    expect(noComment.status).toBe(400);
    expect(noComment.text).toContain('comment');
    const removed = await as(sec).post<AccessReview>(
      `/v1/access-reviews/${campaign.id}/decisions`,
      { item: alice.n, decision: 'remove', comment: 'moved to the data team' },
    );
    expect(removed.status, removed.text).toBe(200);
    expect(removed.body.items!.find((i) => i.n === alice.n)).toMatchObject({
      decision: 'remove',
      removal: 'active',
      comment: 'moved to the data team',
      decided_by: { sub: 'sec-sub' },
    });

    const refused = await as(people.alice).post('/v1/requests', { role: 'ro', reason: 'again' });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { code: 'access_removed' } });
    expect(refused.text).toContain(campaign.id);
    expect(refused.text).toContain('moved to the data team');
    // What alice is told she may request agrees with the refusal: /v1/me and /v1/roles.
    const me = await as(people.alice).get<{ requestable: string[] }>('/v1/me');
    expect(me.body.requestable).not.toContain('ro');
    expect(me.body.requestable).toContain('prod');
    const roles = await as(people.alice).get<{ roles: RoleSummary[] }>('/v1/roles');
    const ro = roles.body.roles.find((r) => r.name === 'ro')!;
    expect(ro.can_request).toBe(false);
    expect(ro.access_removed).toContain(campaign.id);
    expect(ro.access_removed).toContain('moved to the data team');
    expect(roles.body.roles.find((r) => r.name === 'prod')!.can_request).toBe(true);
    const bobs = await as(people.bob).get<{ roles: RoleSummary[] }>('/v1/roles');
    expect(bobs.body.roles.find((r) => r.name === 'ro')).toMatchObject({ can_request: true });
    expect(bobs.body.roles.find((r) => r.name === 'ro')!.access_removed).toBeUndefined();
    // Another role and another person are not touched.
    expect(
      (await as(people.alice).post('/v1/requests', { role: 'prod', reason: 'x' })).status,
    ).toBe(201);
    expect((await file(as(people.bob), { role: 'ro', reason: 'x' })).state).toBe('approved');

    const audit = (await rawSql(
      b.dbUrl,
      `select type, data from audit_events where type like 'access_review.%' order by seq`,
    )) as { type: string; data: string }[];
    expect(audit.map((e) => e.type)).toEqual(['access_review.started', 'access_review.decided']);
    expect(JSON.parse(audit[1]!.data)).toMatchObject({
      campaign_id: campaign.id,
      decision: 'remove',
      subject: 'Alice',
      comment: 'moved to the data team',
    });
  });

  it('removing an entry stops those it alone made eligible', async () => {
    const carol = campaign.items!.find((i) => i.subject === 'user:carol@example.com')!;
    const r = await as(people.root).post<AccessReview>(
      `/v1/access-reviews/${campaign.id}/decisions`,
      {
        item: carol.n,
        decision: 'remove',
        comment: 'contractor left',
      },
    );
    expect(r.status, r.text).toBe(200);
    const refused = await as(people.carol).post('/v1/requests', { role: 'ro', reason: 'x' });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('user:carol@example.com');
  });

  it('an overdue campaign notifies its reviewers once', async () => {
    expect(await b.broker.governance.reviews.tick()).toBe(0);
    b.clock.advance(12 * 86_400_000);
    expect(await b.broker.governance.reviews.tick()).toBe(1);
    await hooks.until((h) => h.some((x) => x.body.type === 'access_review.reminder'));
    b.clock.advance(3 * 86_400_000);
    expect(await b.broker.governance.reviews.tick()).toBe(1);
    expect(await b.broker.governance.reviews.tick()).toBe(0);
    const got = await hooks.until((h) => h.some((x) => x.body.type === 'access_review.overdue'));
    const overdue = got.find((x) => x.body.type === 'access_review.overdue')!;
    expect(overdue.verified).toBe(true);
    expect(overdue.body.priority).toBe('high');
    expect(String(overdue.body.text)).toContain(campaign.id);
    expect(overdue.body.link).toBe(`${b.broker.publicUrl}/ui/access-reviews/${campaign.id}`);
    const listed = await as(sec).get<AccessReview>(`/v1/access-reviews/${campaign.id}`);
    expect(listed.body.overdue).toBe(true);
  });

  it('close lists the policy edits; a closed campaign takes no decisions', async () => {
    const closed = await as(sec).post<AccessReview>(`/v1/access-reviews/${campaign.id}/close`, {});
    expect(closed.status, closed.text).toBe(200);
    expect(closed.body.state).toBe('closed');
    expect(closed.body.edits).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          where: 'identity_provider',
          change: expect.stringContaining('remove Alice from group developers'),
        }),
        expect.objectContaining({
          where: 'policy',
          change: 'remove user:carol@example.com from roles.ro.requesters',
        }),
      ]),
    );
    const late = await as(sec).post(`/v1/access-reviews/${campaign.id}/decisions`, {
      item: 1,
      decision: 'keep',
    });
    expect(late.status).toBe(409);
    // The removal holds after the campaign closed.
    expect((await as(people.alice).post('/v1/requests', { role: 'ro', reason: 'x' })).status).toBe(
      403,
    );
  });

  it('a removal lapses when the role’s requesters change in the policy', async () => {
    // The broker restarted with an edited policy (one SQLite broker at a time).
    await b.broker.close();
    const next = await startTestBroker({
      policy: policy('[group:developers]'),
      dbUrl: b.dbUrl,
      issuer: b.issuer,
      clock: b.clock,
      settings: { auditors: 'auditors', admins: 'admins' },
    });
    try {
      const again = await actor(next, people.alice).post<AccessRequest>('/v1/requests', {
        role: 'ro',
        reason: 'policy edited',
      });
      expect(again.status, again.text).toBe(201);
      const seen = await actor(next, people.ada).get<AccessReview>(
        `/v1/access-reviews/${campaign.id}`,
      );
      expect(seen.body.items!.find((i) => i.subject === 'Alice')!.removal).toBe('lapsed');
    } finally {
      await next.close();
    }
  });
});
