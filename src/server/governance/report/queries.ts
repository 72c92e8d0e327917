import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { Dialect } from '../../store/database.js';
import type { Database } from '../../store/schema.js';

/**
 * The access report's SQL: every figure is an aggregate the database computes over the period
 * (`GROUP BY`, window functions), so a report over a long history reads the period through its
 * indexes (migration 0800) and returns rows per role, per pair or per person, never the history
 * itself. One text for both dialects except where they differ (reading JSON, a basename, numeric
 * sums on PostgreSQL, which are cast back to bigint so they arrive as numbers).
 */

type Q = Kysely<Database>;

export interface Period {
  from: number;
  to: number;
  /** One role, or every role. */
  role: string | null;
}

const n = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const nn = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const s = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** Requests filed in the period (and of the role asked for). */
function inPeriod(p: Period): RawBuilder<unknown> {
  return sql`created_at >= ${p.from} and created_at < ${p.to}${p.role === null ? sql`` : sql` and role = ${p.role}`}`;
}

export interface RoleCounts {
  role: string;
  filed: number;
  approved: number;
  auto: number;
  denied: number;
  expired: number;
  cancelled: number;
  pending: number;
  revoked: number;
  breakGlass: number;
  bgAcknowledged: number;
  bgFlagged: number;
  bgUnreviewed: number;
  bgOverdue: number;
  grantsEnded: number;
  askedSum: number;
  grantedSum: number;
  usedSum: number;
  endedEarly: number;
  stillActive: number;
}

/** The requests filed in the period, counted per role in one pass. */
export async function roleCounts(q: Q, p: Period, now: number): Promise<RoleCounts[]> {
  // A grant's window starts at expires_at - duration - extensions (approval, or the scheduled
  // start if later); it was used until it was revoked, or to its end.
  const ended = sql`approved_at is not null and state in ('expired', 'revoked')`;
  const start = sql`(expires_at - duration_ms - extended_ms)`;
  const used = sql`case when state = 'revoked' and ended_at < expires_at then (case when ended_at > ${start} then ended_at - ${start} else 0 end) else duration_ms + extended_ms end`;
  const count = (cond: RawBuilder<unknown>) =>
    sql`cast(sum(case when ${cond} then 1 else 0 end) as bigint)`;
  const total = (cond: RawBuilder<unknown>, value: RawBuilder<unknown>) =>
    sql`cast(sum(case when ${cond} then ${value} else 0 end) as bigint)`;
  const { rows } = await sql<Record<string, unknown>>`
    select role,
      count(*) as filed,
      ${count(sql`approved_at is not null`)} as approved,
      ${count(sql`approved_at is not null and (break_glass = 1 or decided_by_rule is not null or approvals_required = 0)`)} as auto,
      ${count(sql`state = 'denied'`)} as denied,
      ${count(sql`state = 'expired' and approved_at is null`)} as expired,
      ${count(sql`state = 'cancelled'`)} as cancelled,
      ${count(sql`state = 'pending'`)} as pending,
      ${count(sql`state = 'revoked'`)} as revoked,
      ${count(sql`break_glass = 1`)} as bg,
      ${count(sql`break_glass = 1 and break_glass_verdict = 'acknowledged'`)} as bg_ack,
      ${count(sql`break_glass = 1 and break_glass_verdict = 'flagged'`)} as bg_flagged,
      ${count(sql`break_glass = 1 and break_glass_verdict is null and break_glass_review_by >= ${now}`)} as bg_unreviewed,
      ${count(sql`break_glass = 1 and break_glass_verdict is null and break_glass_review_by < ${now}`)} as bg_overdue,
      ${count(ended)} as grants_ended,
      ${total(ended, sql`duration_ms`)} as asked_sum,
      ${total(ended, sql`duration_ms + extended_ms`)} as granted_sum,
      ${total(ended, used)} as used_sum,
      ${count(sql`state = 'revoked' and approved_at is not null and ended_at < expires_at`)} as ended_early,
      ${count(sql`state in ('approved', 'scheduled')`)} as still_active
    from requests
    where ${inPeriod(p)}
    group by role
    order by role`.execute(q);
  return rows.map((r) => ({
    role: String(r.role),
    filed: n(r.filed),
    approved: n(r.approved),
    auto: n(r.auto),
    denied: n(r.denied),
    expired: n(r.expired),
    cancelled: n(r.cancelled),
    pending: n(r.pending),
    revoked: n(r.revoked),
    breakGlass: n(r.bg),
    bgAcknowledged: n(r.bg_ack),
    bgFlagged: n(r.bg_flagged),
    bgUnreviewed: n(r.bg_unreviewed),
    bgOverdue: n(r.bg_overdue),
    grantsEnded: n(r.grants_ended),
    askedSum: n(r.asked_sum),
    grantedSum: n(r.granted_sum),
    usedSum: n(r.used_sum),
    endedEarly: n(r.ended_early),
    stillActive: n(r.still_active),
  }));
}

export interface DecisionPercentiles {
  decided: number;
  medianMs: number | null;
  p90Ms: number | null;
}

/**
 * Median and 90th percentile of the time from filing to a person's decision, per role, by the
 * nearest-rank method (the value at rank ⌈p·n⌉): row_number over the decided requests, and the
 * two ranks picked out, so only two rows per role leave the database.
 */
export async function decisionTimes(q: Q, p: Period): Promise<Map<string, DecisionPercentiles>> {
  const { rows } = await sql<{ role: string; dt: unknown; rn: unknown; n: unknown }>`
    select role, dt, rn, n from (
      select role, dt,
        row_number() over (partition by role order by dt) as rn,
        count(*) over (partition by role) as n
      from (
        select role, approved_at - created_at as dt from requests
        where ${inPeriod(p)} and approved_at is not null and break_glass = 0
          and decided_by_rule is null and approvals_required > 0
        union all
        select role, ended_at - created_at as dt from requests
        where ${inPeriod(p)} and state = 'denied' and decided_by_rule is null and ended_at is not null
      ) decided
    ) ranked
    where rn = (n + 1) / 2 or rn = (9 * n + 9) / 10`.execute(q);
  const out = new Map<string, DecisionPercentiles>();
  for (const r of rows) {
    const count = n(r.n);
    const rank = n(r.rn);
    const entry = out.get(r.role) ?? { decided: count, medianMs: null, p90Ms: null };
    if (rank === Math.floor((count + 1) / 2)) entry.medianMs = n(r.dt);
    if (rank === Math.floor((9 * count + 9) / 10)) entry.p90Ms = n(r.dt);
    out.set(r.role, entry);
  }
  return out;
}

export interface PairRow {
  role: string;
  reviewer: { iss: string; sub: string; name: string | null };
  requester: { iss: string; sub: string; name: string | null };
  approvals: number;
}

/** Who approved whom (requests and extensions), per role, most often first. */
export async function approverPairs(q: Q, p: Period, limit: number): Promise<PairRow[]> {
  const { rows } = await sql<Record<string, unknown>>`
    select r.role as role, v.reviewer_iss as a_iss, v.reviewer_sub as a_sub,
      max(v.reviewer_name) as a_name, r.requester_iss as b_iss, r.requester_sub as b_sub,
      max(r.requester_name) as b_name, count(*) as approvals
    from reviews v join requests r on r.id = v.request_id
    where v.decision = 'approve' and v.at >= ${p.from} and v.at < ${p.to}${p.role === null ? sql`` : sql` and r.role = ${p.role}`}
    group by r.role, v.reviewer_iss, v.reviewer_sub, r.requester_iss, r.requester_sub
    order by approvals desc, r.role, v.reviewer_sub, r.requester_sub
    limit ${limit}`.execute(q);
  return rows.map((r) => ({
    role: String(r.role),
    reviewer: { iss: String(r.a_iss), sub: String(r.a_sub), name: s(r.a_name) },
    requester: { iss: String(r.b_iss), sub: String(r.b_sub), name: s(r.b_name) },
    approvals: n(r.approvals),
  }));
}

export interface MutualRow {
  a: { iss: string; sub: string; name: string | null };
  b: { iss: string; sub: string; name: string | null };
  aApprovedB: number;
  bApprovedA: number;
}

/** Pairs of people who approved each other in the period (in any role, or in the one asked). */
export async function mutualApprovals(q: Q, p: Period, limit: number): Promise<MutualRow[]> {
  const { rows } = await sql<Record<string, unknown>>`
    with pairs as (
      select v.reviewer_iss as a_iss, v.reviewer_sub as a_sub, max(v.reviewer_name) as a_name,
        r.requester_iss as b_iss, r.requester_sub as b_sub, max(r.requester_name) as b_name,
        count(*) as c
      from reviews v join requests r on r.id = v.request_id
      where v.decision = 'approve' and v.at >= ${p.from} and v.at < ${p.to}${p.role === null ? sql`` : sql` and r.role = ${p.role}`}
      group by v.reviewer_iss, v.reviewer_sub, r.requester_iss, r.requester_sub
    )
    select x.a_iss, x.a_sub, x.a_name, x.b_iss, x.b_sub, x.b_name, x.c as ab, y.c as ba
    from pairs x join pairs y
      on y.a_iss = x.b_iss and y.a_sub = x.b_sub and y.b_iss = x.a_iss and y.b_sub = x.a_sub
    where x.a_sub < x.b_sub or (x.a_sub = x.b_sub and x.a_iss < x.b_iss)
    order by x.c + y.c desc, x.a_sub, x.b_sub
    limit ${limit}`.execute(q);
  return rows.map((r) => ({
    a: { iss: String(r.a_iss), sub: String(r.a_sub), name: s(r.a_name) },
    b: { iss: String(r.b_iss), sub: String(r.b_sub), name: s(r.b_name) },
    aApprovedB: n(r.ab),
    bApprovedA: n(r.ba),
  }));
}

export interface BreakGlassRow {
  id: string;
  role: string;
  requester: { iss: string; sub: string; name: string | null };
  createdAt: number;
  reason: string | null;
  verdict: string | null;
  reviewer: string | null;
  reviewedAt: number | null;
  comment: string | null;
  reviewBy: number | null;
}

/** The newest break-glass uses of the period, at most `perRole` per role. */
export async function breakGlassUses(q: Q, p: Period, perRole: number): Promise<BreakGlassRow[]> {
  const { rows } = await sql<Record<string, unknown>>`
    select * from (
      select id, role, requester_iss, requester_sub, requester_name, created_at, reason,
        break_glass_verdict, break_glass_reviewer, break_glass_reviewed_at, break_glass_comment,
        break_glass_review_by,
        row_number() over (partition by role order by created_at desc, seq desc) as rn
      from requests
      where ${inPeriod(p)} and break_glass = 1
    ) uses
    where rn <= ${perRole}
    order by role, created_at desc`.execute(q);
  return rows.map((r) => ({
    id: String(r.id),
    role: String(r.role),
    requester: {
      iss: String(r.requester_iss),
      sub: String(r.requester_sub),
      name: s(r.requester_name),
    },
    createdAt: n(r.created_at),
    reason: s(r.reason),
    verdict: s(r.break_glass_verdict),
    reviewer: s(r.break_glass_reviewer),
    reviewedAt: nn(r.break_glass_reviewed_at),
    comment: s(r.break_glass_comment),
    reviewBy: nn(r.break_glass_review_by),
  }));
}

export interface FrequentRow {
  role: string;
  person: { iss: string; sub: string; name: string | null };
  mostWithin: number;
  requests: number;
}

/**
 * People who filed at least `count` requests for one role within any `withinMs` (a window
 * function over each person's requests in time order; RANGE counts by time, not by rows).
 */
export async function frequentRequesters(
  q: Q,
  p: Period,
  count: number,
  withinMs: number,
  limit: number,
): Promise<FrequentRow[]> {
  // The offset must be a constant of the column's type; it is a validated whole number.
  const offset = sql.raw(`cast(${Math.max(0, Math.floor(withinMs) - 1)} as bigint)`);
  const { rows } = await sql<Record<string, unknown>>`
    select role, requester_iss, requester_sub, max(requester_name) as name, count(*) as total,
      max(w) as most
    from (
      select role, requester_iss, requester_sub, requester_name,
        count(*) over (partition by role, requester_iss, requester_sub order by created_at
          range between ${offset} preceding and current row) as w
      from requests
      where ${inPeriod(p)}
    ) windows
    group by role, requester_iss, requester_sub
    having max(w) >= ${count}
    order by most desc, total desc, role, requester_sub
    limit ${limit}`.execute(q);
  return rows.map((r) => ({
    role: String(r.role),
    person: { iss: String(r.requester_iss), sub: String(r.requester_sub), name: s(r.name) },
    mostWithin: n(r.most),
    requests: n(r.total),
  }));
}

export interface ProgramRow {
  role: string;
  program: string;
  runs: number;
  people: number;
  failed: number;
  late: number;
  lastAt: string | null;
}

/**
 * The commands `jitctl exec` and `shell` reported under grants (`command.started` and
 * `command.ended` audit events), per role and program. JSON is read in SQL: `json_extract` on
 * SQLite, `->>` on PostgreSQL; the program is the first word of the recorded command without its
 * directory, `(shell)` for a shell session that recorded none.
 */
function commandFields(dialect: Dialect): RawBuilder<unknown> {
  if (dialect === 'postgres') {
    const j = sql`(data::jsonb)`;
    const first = sql`(${j}->'command'->>0)`;
    return sql`${j}->>'role' as role,
      coalesce(regexp_replace(${first}, '^.*/', ''), '(' || coalesce(${j}->>'kind', 'exec') || ')') as program,
      (coalesce(${j}->>'exit_code', '0') <> '0' or (${j}->>'signal') is not null) as failed,
      coalesce(${j}->>'late', 'false') = 'true' as late`;
  }
  const first = sql`json_extract(data, '$.command[0]')`;
  return sql`json_extract(data, '$.role') as role,
    coalesce(replace(${first}, rtrim(${first}, replace(${first}, '/', '')), ''), '(' || coalesce(json_extract(data, '$.kind'), 'exec') || ')') as program,
    (coalesce(cast(json_extract(data, '$.exit_code') as text), '0') <> '0' or json_extract(data, '$.signal') is not null) as failed,
    coalesce(json_extract(data, '$.late'), 0) = 1 as late`;
}

function commandEvents(dialect: Dialect, p: Period): RawBuilder<unknown> {
  const from = new Date(p.from).toISOString();
  const to = new Date(p.to).toISOString();
  return sql`(
    select type, actor, at, ${commandFields(dialect)}
    from audit_events
    where type in ('command.started', 'command.ended') and at >= ${from} and at < ${to}
  ) uses${p.role === null ? sql`` : sql` where role = ${p.role}`}`;
}

export async function programUses(
  q: Q,
  dialect: Dialect,
  p: Period,
  limit: number,
): Promise<ProgramRow[]> {
  const { rows } = await sql<Record<string, unknown>>`
    select role, program,
      cast(sum(case when type = 'command.started' then 1 else 0 end) as bigint) as runs,
      count(distinct case when type = 'command.started' then actor end) as people,
      cast(sum(case when type = 'command.ended' and failed then 1 else 0 end) as bigint) as failed,
      cast(sum(case when type = 'command.started' and late then 1 else 0 end) as bigint) as late,
      max(case when type = 'command.started' then at end) as last_at
    from ${commandEvents(dialect, p)}
    group by role, program
    order by runs desc, role, program
    limit ${limit}`.execute(q);
  return rows
    .filter((r) => r.role !== null)
    .map((r) => ({
      role: String(r.role),
      program: String(r.program),
      runs: n(r.runs),
      people: n(r.people),
      failed: n(r.failed),
      late: n(r.late),
      lastAt: s(r.last_at),
    }));
}

/** Per role: the distinct people who ran anything, and the totals (not limited like programs). */
export async function commandTotals(
  q: Q,
  dialect: Dialect,
  p: Period,
): Promise<Map<string, { runs: number; people: number; failed: number; late: number }>> {
  const { rows } = await sql<Record<string, unknown>>`
    select role,
      cast(sum(case when type = 'command.started' then 1 else 0 end) as bigint) as runs,
      count(distinct case when type = 'command.started' then actor end) as people,
      cast(sum(case when type = 'command.ended' and failed then 1 else 0 end) as bigint) as failed,
      cast(sum(case when type = 'command.started' and late then 1 else 0 end) as bigint) as late
    from ${commandEvents(dialect, p)}
    group by role`.execute(q);
  const out = new Map<string, { runs: number; people: number; failed: number; late: number }>();
  for (const r of rows) {
    if (r.role === null) continue;
    out.set(String(r.role), {
      runs: n(r.runs),
      people: n(r.people),
      failed: n(r.failed),
      late: n(r.late),
    });
  }
  return out;
}

export interface EligibleRow {
  iss: string;
  sub: string;
  name: string | null;
  kind: string;
  email: string | null;
  emailVerified: boolean;
  groups: string[];
  lastSeenAt: number;
  lastRequestAt: number | null;
  inPeriod: number;
}

/**
 * People the directory knows whom one of `entries` makes eligible for `role` (by the groups,
 * subject and verified email of their last sign-in), with their requests for the role: the last
 * one ever and how many in the period (index lookups per person).
 */
export async function eligiblePeople(
  q: Q,
  role: string,
  entries: { groups: string[]; subs: string[]; emails: string[] },
  p: Period,
): Promise<EligibleRow[]> {
  const { groups, subs, emails } = entries;
  if (groups.length + subs.length + emails.length === 0) return [];
  const ors: RawBuilder<unknown>[] = [];
  if (groups.length > 0)
    ors.push(
      sql`exists (select 1 from people_groups g where g.iss = p.iss and g.sub = p.sub and g.group_name in (${sql.join(groups)}))`,
    );
  if (subs.length > 0) ors.push(sql`p.sub in (${sql.join(subs)})`);
  if (emails.length > 0)
    ors.push(sql`(p.email_lower in (${sql.join(emails)}) and p.email_verified = 1)`);
  const { rows } = await sql<Record<string, unknown>>`
    select p.iss, p.sub, p.name, p.kind, p.email, p.email_verified, p.groups, p.last_seen_at,
      (select max(r.created_at) from requests r
        where r.role = ${role} and r.requester_sub = p.sub and r.requester_iss = p.iss) as last_any,
      (select count(*) from requests r
        where r.role = ${role} and r.requester_sub = p.sub and r.requester_iss = p.iss
          and r.created_at >= ${p.from} and r.created_at < ${p.to}) as in_period
    from people p
    where ${sql.join(ors, sql` or `)}
    order by p.iss, p.sub`.execute(q);
  return rows.map((r) => {
    let groups: string[] = [];
    try {
      const parsed = JSON.parse(String(r.groups)) as unknown;
      if (Array.isArray(parsed)) groups = parsed.filter((g): g is string => typeof g === 'string');
    } catch {}
    return {
      iss: String(r.iss),
      sub: String(r.sub),
      name: s(r.name),
      kind: String(r.kind),
      email: s(r.email),
      emailVerified: n(r.email_verified) === 1,
      groups,
      lastSeenAt: n(r.last_seen_at),
      lastRequestAt: nn(r.last_any),
      inPeriod: n(r.in_period),
    };
  });
}
