import {
  type Insertable,
  type Kysely,
  type SelectQueryBuilder,
  sql,
  type Updateable,
} from 'kysely';
import type { BreakGlassFilter, RequestState } from '../../api/schemas.js';
import { reusable } from './compiled.js';
import type { Dialect } from './database.js';
import type { Database, RequestRow, RequestsTable, ReviewRow, ReviewsTable } from './schema.js';

/**
 * Queries on requests and reviews. Each takes the kysely handle to run on: the pool for reads, a
 * transaction's connection for writes. `lock` rows are read `FOR UPDATE` on PostgreSQL; SQLite
 * needs no row locks because its write transactions are serialized (`BEGIN IMMEDIATE`).
 */
type Q = Kysely<Database>;

const requestById = reusable((q, id) =>
  q
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', id as string),
);
const requestByIdForUpdate = reusable((q, id) =>
  q
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', id as string)
    .forUpdate(),
);

export async function getRequest(
  q: Q,
  id: string,
  lock?: Dialect,
): Promise<RequestRow | undefined> {
  const rows = await (lock === 'postgres' ? requestByIdForUpdate : requestById)(q, id);
  return rows[0];
}

const reviewsOf = reusable((q, id) =>
  q
    .selectFrom('reviews')
    .selectAll()
    .where('request_id', '=', id as string)
    .orderBy('at', 'asc')
    .orderBy('reviewer_sub', 'asc'),
);

export function getReviews(q: Q, requestId: string): Promise<ReviewRow[]> {
  return reviewsOf(q, requestId);
}

/** Reviews of many requests at once (a page of GET /v1/requests), grouped by request id. */
export async function getReviewsOf(q: Q, ids: string[]): Promise<Map<string, ReviewRow[]>> {
  const out = new Map<string, ReviewRow[]>();
  if (ids.length === 0) return out;
  const rows = await q
    .selectFrom('reviews')
    .selectAll()
    .where('request_id', 'in', ids)
    .orderBy('at', 'asc')
    .orderBy('reviewer_sub', 'asc')
    .execute();
  for (const r of rows) {
    const list = out.get(r.request_id);
    if (list) list.push(r);
    else out.set(r.request_id, [r]);
  }
  return out;
}

const requestByIdempotencyKey = reusable((q, iss, sub, key) =>
  q
    .selectFrom('requests')
    .selectAll()
    .where('requester_iss', '=', iss as string)
    .where('requester_sub', '=', sub as string)
    .where('idempotency_key', '=', key as string),
);

export async function findByIdempotencyKey(
  q: Q,
  iss: string,
  sub: string,
  key: string,
): Promise<RequestRow | undefined> {
  return (await requestByIdempotencyKey(q, iss, sub, key))[0];
}

/** Inserts a request and returns its seq (the keyset of listings). */
export async function insertRequest(
  q: Q,
  row: Omit<Insertable<RequestsTable>, 'seq'>,
): Promise<number> {
  const { seq } = await q
    .insertInto('requests')
    .values(row)
    .returning('seq')
    .executeTakeFirstOrThrow();
  return seq;
}

export async function updateRequest(
  q: Q,
  id: string,
  patch: Updateable<RequestsTable>,
): Promise<void> {
  await q.updateTable('requests').set(patch).where('id', '=', id).execute();
}

export async function insertReview(q: Q, row: Insertable<ReviewsTable>): Promise<void> {
  await q.insertInto('reviews').values(row).execute();
}

export async function hasReviewed(
  q: Q,
  requestId: string,
  iss: string,
  sub: string,
): Promise<boolean> {
  const row = await q
    .selectFrom('reviews')
    .select('request_id')
    .where('request_id', '=', requestId)
    .where('reviewer_iss', '=', iss)
    .where('reviewer_sub', '=', sub)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Requests time has changed, soonest first: pending ones past their TTL, approved ones past their
 * window, scheduled ones whose start (or whole window) has come, and break-glass grants left
 * unreviewed past their deadline (not yet marked overdue). One query per kind, each an ordered
 * range of an index that stops at `limit`: with `state IN (…) ORDER BY expires_at` PostgreSQL
 * cannot read the (state, expires_at) index in deadline order, so it fetched every live request
 * and sorted them (13 ms at 100,000 requests, before every listing).
 */
export async function dueForExpiry(q: Q, now: number, limit: number): Promise<string[]> {
  const due = await Promise.all([
    ...(['pending', 'approved'] as const).map((state) =>
      q
        .selectFrom('requests')
        .select(['id', 'expires_at as at'])
        .where('state', '=', state)
        .where('expires_at', '<=', now)
        .orderBy('expires_at', 'asc')
        .limit(limit)
        .execute(),
    ),
    q
      .selectFrom('requests')
      .select(['id', 'starts_at as at'])
      .where('state', '=', 'scheduled')
      .where((eb) => eb.or([eb('starts_at', '<=', now), eb('expires_at', '<=', now)]))
      .limit(limit)
      .execute(),
    q
      .selectFrom('requests')
      .select(['id', 'break_glass_review_by as at'])
      .where('break_glass_review_by', '<=', now)
      .where('break_glass_verdict', 'is', null)
      .where('break_glass_overdue_at', 'is', null)
      .orderBy('break_glass_review_by', 'asc')
      .limit(limit)
      .execute(),
  ]);
  const ids = due
    .flat()
    .sort((a, b) => Number(a.at ?? 0) - Number(b.at ?? 0))
    .map((r) => r.id);
  return [...new Set(ids)].slice(0, limit);
}

/** What limits a filing (FilingCounts of lifecycle/filing.ts), read in the filing's transaction. */
const pendingCount = reusable((q, sub, iss, role, pending) =>
  q
    .selectFrom('requests')
    .where('requester_sub', '=', sub as string)
    .where('requester_iss', '=', iss as string)
    .where('role', '=', role as string)
    .where('state', '=', pending as 'pending')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('expires_at').as('oldest')]),
);

/**
 * What the filing limits need of the person's requests for `role`: their pending ones (max_pending)
 * or, for a break-glass filing, their break-glass requests since `weekAgo`. Only the count the
 * filing is checked against is read (checkLimits); the other is left at zero.
 */
export async function filingCounts(
  q: Q,
  dialect: Dialect,
  requester: { iss: string; sub: string },
  role: string,
  weekAgo: number,
  breakGlass: boolean,
): Promise<{
  pending: number;
  oldestPendingDeadline: number | null;
  breakGlassThisWeek: number;
  oldestBreakGlass: number | null;
}> {
  // PostgreSQL: two filings by one person for one role queue here, so both cannot count the
  // same number and pass the limit together (SQLite's writers are serialized already).
  if (dialect === 'postgres') {
    await sql`select pg_advisory_xact_lock(hashtext(${`${requester.iss}|${requester.sub}|${role}`}))`.execute(
      q,
    );
  }
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const none = {
    pending: 0,
    oldestPendingDeadline: null,
    breakGlassThisWeek: 0,
    oldestBreakGlass: null,
  };
  if (breakGlass) {
    const r = await q
      .selectFrom('requests')
      .where('requester_sub', '=', requester.sub)
      .where('requester_iss', '=', requester.iss)
      .where('role', '=', role)
      .where('break_glass', '=', 1)
      .where('created_at', '>', weekAgo)
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
      .executeTakeFirstOrThrow();
    return { ...none, breakGlassThisWeek: Number(r.n), oldestBreakGlass: num(r.oldest) };
  }
  const [r] = await pendingCount(q, requester.sub, requester.iss, role, 'pending');
  if (!r) throw new Error('count(*) returned no row');
  return { ...none, pending: Number(r.n), oldestPendingDeadline: num(r.oldest) };
}

export interface ListFilter {
  state?: RequestState;
  /** Break-glass grants only, by the state of their review afterwards. */
  breakGlass?: BreakGlassFilter;
  /** Approved grants with an extension waiting for review (the review pages' "waiting for you"). */
  extensionPending?: boolean;
  /** Only requests filed by this identity. */
  requester?: { iss: string; sub: string };
  /**
   * Restrict to these roles, plus (unless `rolesOnly`) requests filed by `self`. Undefined: no role
   * restriction (admins and auditors see every request).
   */
  roles?: string[];
  /** The caller: with `roles`, their own requests stay visible; with `excludeSelf`, they are removed. */
  self?: { iss: string; sub: string };
  excludeSelf?: boolean;
  rolesOnly?: boolean;
  /** Keyset: only rows with seq below this. */
  beforeSeq?: number;
  limit: number;
}

/**
 * A page, newest first (by seq). A role restriction runs as one keyset branch per role (plus one
 * for the caller's own requests), each walking an index in seq order and stopping at the page
 * size; an `OR` over roles and requester instead makes SQLite and PostgreSQL union the matches
 * and sort them all, tens of milliseconds at 100,000 rows instead of one. The branches read only
 * `seq`, and only the page's rows are read whole: a lead with five roles used to fetch and parse
 * six pages of rows to return one.
 */
export async function listRequests(q: Q, f: ListFilter): Promise<RequestRow[]> {
  const where = <O>(query: SelectQueryBuilder<Database, 'requests', O>) => {
    let b = query;
    if (f.state) b = b.where('state', '=', f.state);
    if (f.breakGlass) {
      b = b.where('break_glass', '=', 1);
      if (f.breakGlass === 'unreviewed') b = b.where('break_glass_verdict', 'is', null);
      if (f.breakGlass === 'overdue') {
        b = b
          .where('break_glass_verdict', 'is', null)
          .where('break_glass_overdue_at', 'is not', null);
      }
      if (f.breakGlass === 'acknowledged' || f.breakGlass === 'flagged') {
        b = b.where('break_glass_verdict', '=', f.breakGlass);
      }
    }
    if (f.extensionPending) {
      // Approved rows are live grants, few per role: the (role, state, seq) index finds them.
      b = b.where('state', '=', 'approved').where('extension_state', '=', 'pending');
    }
    if (f.requester) {
      const { iss, sub } = f.requester;
      b = b.where('requester_sub', '=', sub).where('requester_iss', '=', iss);
    }
    if (f.excludeSelf && f.self) {
      const { iss, sub } = f.self;
      b = b.where((eb) => eb.or([eb('requester_sub', '!=', sub), eb('requester_iss', '!=', iss)]));
    }
    if (f.beforeSeq !== undefined) b = b.where('seq', '<', f.beforeSeq);
    return b.orderBy('seq', 'desc').limit(f.limit);
  };
  if (!f.roles) return where(q.selectFrom('requests').selectAll()).execute();
  const seqs = q.selectFrom('requests').select('seq');
  const branches = f.roles.map((role) => where(seqs.where('role', '=', role)));
  const self = f.self;
  if (self && !f.rolesOnly) {
    branches.push(
      where(seqs.where('requester_sub', '=', self.sub).where('requester_iss', '=', self.iss)),
    );
  }
  if (branches.length === 0) return [];
  // One statement: each branch a subquery keeping its own ORDER BY and LIMIT and reading only
  // `seq` (from its index), UNION dropping a request two branches found, then the page's rows.
  const union = sql.join(
    branches.map((b, i) => sql`select seq from ${b.as(`b${i}`)}`),
    sql` union `,
  );
  return q
    .selectFrom('requests')
    .selectAll()
    .where(
      'seq',
      'in',
      sql<number>`(select seq from (${union}) as branches order by seq desc limit ${f.limit})`,
    )
    .orderBy('seq', 'desc')
    .execute();
}
