import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report, RoleReport } from '../../src/api/governance.js';
import { appendAudit, type NewAuditEvent } from '../../src/server/audit/log.js';
import { ReportService } from '../../src/server/governance/report/compute.js';
import { renderReport } from '../../src/server/governance/report/render.js';
import { parsePolicy } from '../../src/server/policy/parse.js';
import type { Db } from '../../src/server/store/database.js';
import { migratedDatabase, requestRow } from '../support/store.js';

/**
 * The access report against a seeded history whose every figure is worked out by hand, on SQLite
 * and PostgreSQL (the same SQL must give the same numbers): counts per outcome, nearest-rank
 * median and p90 time to decision, asked vs used time, who approved whom (and a mutual pair),
 * break-glass uses and their review, frequent requesters, commands run under grants, and the
 * entries and people eligible but unused. Then the formats: HTML escapes, charts, no script.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 5, 30, 12, 0, 0);
const ISS = 'https://idp.example.com';

const POLICY = parsePolicy(
  `
roles:
  prod:
    description: Production deploys
    requesters: [group:developers, user:carol@example.com]
    approvers: [group:leads]
    max_duration: 2h
    credential: { audience: https://prod.example.com }
  ro:
    requesters: [group:developers, group:contractors]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    credential: { audience: https://ro.example.com }
`,
  'policy.yaml',
);

const who = (sub: string, name: string) => ({ iss: ISS, sub, name });
const alice = who('alice-sub', 'Alice');
const bob = who('bob-sub', 'Bob');
const carol = who('carol-sub', 'Carol');
const lee = who('lee-sub', 'Lee');
const lin = who('lin-sub', 'Lin');

interface Grant {
  id: string;
  role: string;
  by: { sub: string; name: string };
  at: number;
  duration: number;
  /** Minutes to the decision; null: none. */
  decidedAfter?: number;
  state: 'approved' | 'denied' | 'expired' | 'revoked';
  /** Revoked: minutes of use before it. */
  usedMin?: number;
  approver?: { sub: string; name: string };
  auto?: boolean;
  breakGlass?: { verdict: 'acknowledged' | 'flagged' | null; reviewBy: number };
}

const GRANTS: Grant[] = [
  // prod: decided by people after 5, 15, 25, 45 (a denial) and 10 minutes.
  {
    id: 'req_p1',
    role: 'prod',
    by: alice,
    at: NOW - 10 * DAY,
    duration: HOUR,
    decidedAfter: 5,
    state: 'expired',
    approver: lee,
  },
  {
    id: 'req_p2',
    role: 'prod',
    by: alice,
    at: NOW - 9 * DAY,
    duration: 2 * HOUR,
    decidedAfter: 15,
    state: 'revoked',
    usedMin: 30,
    approver: lee,
  },
  {
    id: 'req_p3',
    role: 'prod',
    by: bob,
    at: NOW - 8 * DAY,
    duration: HOUR,
    decidedAfter: 25,
    state: 'expired',
    approver: lin,
  },
  {
    id: 'req_p4',
    role: 'prod',
    by: bob,
    at: NOW - 8 * DAY + HOUR,
    duration: HOUR,
    decidedAfter: 45,
    state: 'denied',
    approver: lee,
  },
  { id: 'req_p5', role: 'prod', by: alice, at: NOW - 7 * DAY, duration: HOUR, state: 'expired' },
  {
    id: 'req_p6',
    role: 'prod',
    by: lee,
    at: NOW - 6 * DAY,
    duration: 30 * MIN,
    decidedAfter: 10,
    state: 'expired',
    approver: alice,
  },
  {
    id: 'req_b1',
    role: 'prod',
    by: carol,
    at: NOW - 2 * DAY,
    duration: HOUR,
    decidedAfter: 0,
    state: 'expired',
    auto: true,
    breakGlass: { verdict: null, reviewBy: NOW - DAY },
  },
  {
    id: 'req_b2',
    role: 'prod',
    by: alice,
    at: NOW - 3 * DAY,
    duration: HOUR,
    decidedAfter: 0,
    state: 'expired',
    auto: true,
    breakGlass: { verdict: 'acknowledged', reviewBy: NOW - 2 * DAY },
  },
  // Before the period: counted nowhere.
  {
    id: 'req_old',
    role: 'prod',
    by: alice,
    at: NOW - 40 * DAY,
    duration: HOUR,
    decidedAfter: 1,
    state: 'expired',
    approver: lee,
  },
  // ro: Bob three times within five hours, approved automatically.
  ...[0, 2, 5].map(
    (h, i): Grant => ({
      id: `req_r${i + 1}`,
      role: 'ro',
      by: bob,
      at: NOW - 5 * DAY + h * HOUR,
      duration: 10 * MIN,
      decidedAfter: 0,
      state: 'expired',
      auto: true,
    }),
  ),
];

async function seed(db: Db): Promise<void> {
  const q = db.kysely;
  for (const g of GRANTS) {
    const decidedAt = g.decidedAfter === undefined ? null : g.at + g.decidedAfter * MIN;
    const approvedAt = g.state === 'denied' ? null : decidedAt;
    const expiresAt = approvedAt === null ? g.at + HOUR : approvedAt + g.duration;
    await q
      .insertInto('requests')
      .values(
        requestRow({
          id: g.id,
          role: g.role,
          state: g.state,
          requester_iss: ISS,
          requester_sub: g.by.sub,
          requester_name: g.by.name,
          duration_ms: g.duration,
          created_at: g.at,
          expires_at: expiresAt,
          approved_at: approvedAt,
          ended_at:
            g.state === 'revoked'
              ? approvedAt! + g.usedMin! * MIN
              : g.state === 'denied'
                ? decidedAt
                : expiresAt,
          approvals_required: g.auto ? 0 : 1,
          break_glass: g.breakGlass ? 1 : 0,
          break_glass_review_by: g.breakGlass?.reviewBy ?? null,
          break_glass_verdict: g.breakGlass?.verdict ?? null,
          break_glass_reviewer: g.breakGlass?.verdict ? JSON.stringify(lee) : null,
          break_glass_reviewed_at: g.breakGlass?.verdict ? g.at + HOUR : null,
        }),
      )
      .execute();
    if (g.approver)
      await q
        .insertInto('reviews')
        .values({
          request_id: g.id,
          reviewer_iss: ISS,
          reviewer_sub: g.approver.sub,
          reviewer_name: g.approver.name,
          decision: g.state === 'denied' ? 'deny' : 'approve',
          comment: null,
          at: decidedAt!,
        })
        .execute();
  }
  const person = (sub: string, name: string, groups: string[], email: string | null = null) => ({
    iss: ISS,
    sub,
    kind: 'person' as const,
    name,
    email,
    email_lower: email?.toLowerCase() ?? null,
    email_verified: 1,
    groups: JSON.stringify(groups),
    first_seen_at: NOW - 60 * DAY,
    last_seen_at: NOW - DAY,
  });
  const people = [
    person('alice-sub', 'Alice', ['developers']),
    person('bob-sub', 'Bob', ['developers']),
    person('carol-sub', 'Carol', [], 'carol@example.com'),
    person('dave-sub', 'Dave', ['developers']),
    person('erin-sub', 'Erin <img src=x onerror=alert(1)>', ['contractors']),
    person('lee-sub', 'Lee', ['leads']),
  ];
  await q.insertInto('people').values(people).execute();
  await q
    .insertInto('people_groups')
    .values(
      people.flatMap((p) =>
        (JSON.parse(p.groups) as string[]).map((g) => ({ iss: p.iss, sub: p.sub, group_name: g })),
      ),
    )
    .execute();
  // Commands under grants (as `jitctl exec` and `shell` report them).
  const use = (
    type: 'command.started' | 'command.ended',
    by: typeof alice,
    data: Record<string, unknown>,
  ): NewAuditEvent => ({
    type: type as NewAuditEvent['type'],
    request_id: 'req_p1',
    actor: by,
    data: { role: 'prod', kind: 'exec', late: false, ...data },
  });
  await db.transaction((tx) =>
    appendAudit(tx, db.dialect, NOW - 10 * DAY + 10 * MIN, [
      use('command.started', alice, { command: ['kubectl'] }),
      use('command.ended', alice, { command: ['kubectl'], exit_code: 0, signal: null }),
      use('command.started', alice, { command: ['kubectl'], late: true }),
      use('command.ended', alice, { command: ['kubectl'], exit_code: 1, signal: null }),
      use('command.started', bob, { command: ['/usr/bin/psql', '-c', '[redacted]'] }),
      use('command.ended', bob, {
        command: ['/usr/bin/psql', '-c', '[redacted]'],
        exit_code: null,
        signal: 'SIGTERM',
      }),
      use('command.started', alice, { kind: 'shell' }),
    ]),
  );
  // A command long before the period.
  await db.transaction((tx) =>
    appendAudit(tx, db.dialect, NOW - 45 * DAY, [use('command.started', bob, { command: ['rm'] })]),
  );
}

describe.each(['sqlite', 'postgres'] as const)('the access report on %s', (dialect) => {
  let store: Awaited<ReturnType<typeof migratedDatabase>>;
  let report: Report;
  const role = (name: string): RoleReport => report.roles.find((r) => r.role === name)!;
  beforeAll(async () => {
    store = await migratedDatabase(dialect);
    await seed(store.db);
    const service = new ReportService({
      db: store.db,
      clock: { now: () => NOW },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
    });
    report = await service.compute({ since: '30d' });
  });
  afterAll(async () => store?.close());

  it('counts requests per outcome in the period only', () => {
    expect(report.totals).toEqual({
      requests: 11,
      approved: 9,
      denied: 1,
      break_glass: 2,
      command_runs: 4,
    });
    expect(role('prod').requests).toEqual({
      filed: 8,
      approved: 6,
      approved_automatically: 2,
      denied: 1,
      expired: 1,
      cancelled: 0,
      pending: 0,
      revoked: 1,
    });
    expect(role('ro').requests).toMatchObject({ filed: 3, approved: 3, approved_automatically: 3 });
  });

  it('times decisions by nearest rank, people’s decisions only', () => {
    expect(role('prod').time_to_decision).toEqual({
      decided: 5,
      median: '15m',
      median_ms: 15 * MIN,
      p90: '45m',
      p90_ms: 45 * MIN,
    });
    expect(role('ro').time_to_decision).toMatchObject({ decided: 0, median: null, p90: null });
  });

  it('compares time asked with time used (revoked early counts until the revocation)', () => {
    expect(role('prod').durations).toEqual({
      grants: 6,
      asked_avg: '1h5m',
      asked_avg_ms: 65 * MIN,
      granted_avg: '1h5m',
      granted_avg_ms: 65 * MIN,
      used_avg: '50m',
      used_avg_ms: 50 * MIN,
      used_share: 0.769,
      ended_early: 1,
      still_active: 0,
    });
  });

  it('says who approved whom, and finds the pair approving each other', () => {
    const pairs = role('prod').approver_pairs.map((p) => [
      p.reviewer.sub,
      p.requester.sub,
      p.approvals,
      p.mutual,
    ]);
    expect(pairs).toEqual([
      ['lee-sub', 'alice-sub', 2, true],
      ['alice-sub', 'lee-sub', 1, true],
      ['lin-sub', 'bob-sub', 1, false],
    ]);
    expect(report.mutual_approvals).toEqual([
      { a: alice, b: lee, a_approved_b: 1, b_approved_a: 2 },
    ]);
  });

  it('lists break-glass uses with their review', () => {
    const bg = role('prod').break_glass;
    expect(bg).toMatchObject({ uses: 2, acknowledged: 1, flagged: 0, unreviewed: 0, overdue: 1 });
    expect(bg.items.map((i) => [i.request_id, i.status, i.reviewer?.sub ?? null])).toEqual([
      ['req_b1', 'overdue', null],
      ['req_b2', 'acknowledged', 'lee-sub'],
    ]);
  });

  it('flags people who requested a role 3 times within 24 hours', () => {
    expect(report.frequent_threshold).toEqual({ count: 3, within: '1d' });
    expect(role('ro').frequent).toEqual([{ person: bob, most_within: 3, requests: 3 }]);
    expect(role('prod').frequent).toEqual([]);
  });

  it('counts the commands run under each role, by program', () => {
    expect(role('prod').commands).toEqual({
      runs: 4,
      people: 2,
      failed: 2,
      late: 1,
      programs: [
        { program: 'kubectl', runs: 2, people: 1, failed: 1, last_at: expect.any(String) },
        { program: '(shell)', runs: 1, people: 1, failed: 0, last_at: expect.any(String) },
        { program: 'psql', runs: 1, people: 1, failed: 1, last_at: expect.any(String) },
      ],
    });
    expect(role('ro').commands.runs).toBe(0);
  });

  it('names entries and people eligible but unused (least-privilege candidates)', () => {
    expect(role('prod').unused.entries).toEqual([]);
    expect(role('prod').unused.people.map((p) => p.person.sub)).toEqual(['dave-sub']);
    expect(role('ro').unused.entries).toEqual([{ entry: 'group:contractors', known: 1, used: 0 }]);
    expect(role('ro').unused.people_total).toBe(3);
    expect(report.findings.map((f) => f.kind).sort()).toEqual([
      'break_glass_overdue',
      'frequent_requester',
      'mutual_approval',
      'unused_entry',
    ]);
  });

  it('one role, another period, and refusals of bad input', async () => {
    const service = new ReportService({
      db: store.db,
      clock: { now: () => NOW },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
    });
    const ro = await service.compute({ role: 'ro', since: '2026-06-01' });
    expect(ro.roles.map((r) => r.role)).toEqual(['ro']);
    expect(ro.totals.requests).toBe(3);
    const week = await service.compute({ since: '4d' });
    expect(week.totals.requests).toBe(2);
    await expect(service.compute({ role: 'nope' })).rejects.toMatchObject({
      status: 400,
      code: 'unknown_role',
    });
    await expect(service.compute({ since: 'yesterday' })).rejects.toMatchObject({ status: 400 });
    await expect(service.compute({ since: '2100-01-01' })).rejects.toMatchObject({ status: 400 });
    await expect(service.compute({ frequent: '1/1h' })).rejects.toMatchObject({ status: 400 });
  });

  it('renders every format from the same figures; HTML is one offline file, escaped', () => {
    const html = renderReport(report, 'html').body;
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/i);
    expect(html).toContain('Erin &lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<img');
    const text = renderReport(report, 'text').body;
    expect(text).toContain('median 15m, 90th percentile 45m');
    const md = renderReport(report, 'md').body;
    expect(md).toContain('## prod');
    const csv = renderReport(report, 'csv').body.split('\r\n');
    expect(csv[0]).toBe('section,role,subject,metric,value');
    expect(csv).toContain('requests,prod,,filed,8');
    expect(JSON.parse(renderReport(report, 'json').body)).toEqual(report);
  });
});
