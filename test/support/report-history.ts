import { appendAudit, type NewAuditEvent } from '../../src/server/audit/log.js';
import { parsePolicy } from '../../src/server/policy/parse.js';
import type { Db } from '../../src/server/store/database.js';
import { requestRow } from './store.js';

/**
 * A history for the access report whose every figure is worked out by hand (test/server/
 * report.test.ts checks them; the report screenshot in docs/images/ is drawn from it): two roles,
 * decisions by people after 5, 10, 15, 25 and 45 minutes, a revocation, a mutual pair, two
 * break-glass uses, a frequent requester, commands under grants, and eligible people who never
 * asked.
 */

export const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
export const NOW = Date.UTC(2026, 5, 30, 12, 0, 0);
const ISS = 'https://idp.example.com';

export const POLICY = parsePolicy(
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
export const alice = who('alice-sub', 'Alice');
export const bob = who('bob-sub', 'Bob');
export const carol = who('carol-sub', 'Carol');
export const lee = who('lee-sub', 'Lee');
export const lin = who('lin-sub', 'Lin');

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

export async function seed(db: Db): Promise<void> {
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
