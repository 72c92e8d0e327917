import type { Insertable, Kysely } from 'kysely';
import type { Db } from './database.js';
import type { Database, NotificationOutboxTable, OutboxRow } from './schema.js';

/**
 * The notification outbox's queries (src/server/notify/ uses them). Rows are claimed with a lease
 * (`claimed_by`, `claimed_until`) so delivery happens outside any transaction and a replica that
 * dies mid-delivery only delays its rows until the lease ends; on PostgreSQL the claim skips rows
 * another replica is claiming at the same moment (`FOR UPDATE SKIP LOCKED`).
 */

type Q = Kysely<Database>;
export type NewOutboxRow = Insertable<NotificationOutboxTable>;

/** Inserts rows, skipping any whose `dedupe_key` is already there; returns how many were new. */
export async function enqueue(q: Q, rows: NewOutboxRow[]): Promise<number> {
  let n = 0;
  // Chunks keep each statement under SQLite's variable limit.
  for (let i = 0; i < rows.length; i += 50) {
    const r = await q
      .insertInto('notification_outbox')
      .values(rows.slice(i, i + 50))
      .onConflict((oc) => oc.column('dedupe_key').doNothing())
      .executeTakeFirst();
    n += Number(r.numInsertedOrUpdatedRows ?? 0);
  }
  return n;
}

const due = (q: Q, now: number, busy: readonly string[]) => {
  let s = q
    .selectFrom('notification_outbox')
    .select('id')
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<', now)]));
  if (busy.length > 0) s = s.where('target', 'not in', [...busy]);
  return s;
};

/** Claims up to `limit` due rows for `owner` until `until`: high priority first, then in order. */
export async function claimDue(
  db: Db,
  opts: {
    now: number;
    owner: string;
    until: number;
    limit: number;
    /** Targets this replica is delivering to now: their next rows wait, to keep their order. */
    busy?: readonly string[];
  },
): Promise<OutboxRow[]> {
  const busy = opts.busy ?? [];
  // A read first, so an idle queue never takes SQLite's write lock.
  if (!(await due(db.kysely, opts.now, busy).limit(1).executeTakeFirst())) return [];
  const rows = await db.transaction(async (tx) => {
    let pick = due(tx, opts.now, busy)
      .orderBy('priority', 'desc')
      .orderBy('next_attempt_at', 'asc')
      .orderBy('event_seq', 'asc')
      .limit(opts.limit);
    if (db.dialect === 'postgres') pick = pick.forUpdate().skipLocked();
    const ids = (await pick.execute()).map((r) => r.id);
    if (ids.length === 0) return [];
    return tx
      .updateTable('notification_outbox')
      .set({ claimed_by: opts.owner, claimed_until: opts.until })
      .where('id', 'in', ids)
      .returningAll()
      .execute();
  });
  return rows.sort(
    (a, b) =>
      b.priority - a.priority || a.next_attempt_at - b.next_attempt_at || a.event_seq - b.event_seq,
  );
}

/** Records an attempt's result, if `owner` still holds the claim. */
export async function settle(
  q: Q,
  id: string,
  owner: string,
  patch: Partial<
    Pick<OutboxRow, 'state' | 'attempts' | 'next_attempt_at' | 'last_error' | 'done_at'>
  >,
): Promise<void> {
  await q
    .updateTable('notification_outbox')
    .set({ ...patch, claimed_by: null, claimed_until: null })
    .where('id', '=', id)
    .where('claimed_by', '=', owner)
    .execute();
}

/** At shutdown: rows this replica claimed but did not finish are free for the next one at once. */
export async function releaseClaims(q: Q, owner: string): Promise<void> {
  await q
    .updateTable('notification_outbox')
    .set({ claimed_by: null, claimed_until: null })
    .where('claimed_by', '=', owner)
    .where('state', '=', 'pending')
    .execute();
}

/** Notifications due and not yet delivered (retries included), and the oldest one's due time. */
export async function backlog(
  q: Q,
  now: number,
): Promise<{ depth: number; oldestDueAt: number | null }> {
  const r = await q
    .selectFrom('notification_outbox')
    .select((eb) => [eb.fn.countAll<number>().as('depth'), eb.fn.min('due_at').as('oldest')])
    .where('state', '=', 'pending')
    .where('due_at', '<=', now)
    .executeTakeFirst();
  return {
    depth: Number(r?.depth ?? 0),
    oldestDueAt: r?.oldest === null || r?.oldest === undefined ? null : Number(r.oldest),
  };
}

/** Deletes delivered, failed and dropped rows finished before `before`. */
export async function purgeDone(q: Q, before: number): Promise<void> {
  await q
    .deleteFrom('notification_outbox')
    .where('state', '!=', 'pending')
    .where('done_at', '<', before)
    .execute();
}

export async function readCursor(q: Q): Promise<number> {
  const row = await q
    .selectFrom('notification_cursor')
    .select('seq')
    .where('id', '=', 1)
    .executeTakeFirst();
  return row?.seq ?? 0;
}

/**
 * Moves the cursor from `from` to `to` only if nobody moved it meanwhile (compare and set): of
 * two replicas routing the same events, one commits and the other rolls back.
 */
export async function advanceCursor(q: Q, from: number, to: number): Promise<boolean> {
  const r = await q
    .updateTable('notification_cursor')
    .set({ seq: to })
    .where('id', '=', 1)
    .where('seq', '=', from)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}
