import type { Kysely } from 'kysely';
import { KEY_EVENT_TYPES, keysNamedBy } from '../../api/audit-checkpoint.js';
import type { AuditRequestContext } from '../../api/schemas.js';
import type { AuditCheckpointsTable, AuditSinkCursorRow, Database } from './schema.js';

/**
 * Queries of audit streaming: checkpoints (src/server/audit/checkpoints.ts), the HTTP sinks'
 * cursors (src/server/audit/sinks/), and the request facts OCSF output needs. A sink's cursor
 * moves by compare-and-set on its old position and its lease, as the notification cursor does,
 * so a replica whose lease ran out can never move it back or past what it delivered.
 */

type Q = Kysely<Database>;
export type CheckpointRow = AuditCheckpointsTable;

export async function auditHead(q: Q): Promise<{ seq: number; hash: string }> {
  const row = await q
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  return { seq: Number(row.seq), hash: row.hash };
}

/** When event `seq` was written (ms), for a sink's lag in seconds. */
export async function eventTime(q: Q, seq: number): Promise<number | undefined> {
  const row = await q
    .selectFrom('audit_events')
    .select('at')
    .where('seq', '=', seq)
    .executeTakeFirst();
  return row ? Date.parse(row.at) : undefined;
}

export async function latestCheckpoint(q: Q): Promise<CheckpointRow | undefined> {
  return q
    .selectFrom('audit_checkpoints')
    .selectAll()
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** Stores a checkpoint unless one of the same head exists; returns the one stored for its seq. */
export async function storeCheckpoint(q: Q, row: CheckpointRow): Promise<CheckpointRow> {
  await q
    .insertInto('audit_checkpoints')
    .values(row)
    .onConflict((oc) => oc.column('seq').doNothing())
    .execute();
  return q
    .selectFrom('audit_checkpoints')
    .selectAll()
    .where('seq', '=', row.seq)
    .executeTakeFirstOrThrow();
}

/** Checkpoints with `after` < seq ≤ `upTo`, in order. */
export async function checkpointsBetween(
  q: Q,
  after: number,
  upTo: number,
  limit: number,
): Promise<CheckpointRow[]> {
  const rows = await q
    .selectFrom('audit_checkpoints')
    .selectAll()
    .where('seq', '>', after)
    .where('seq', '<=', upTo)
    .orderBy('seq', 'asc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ ...r, seq: Number(r.seq), signed_at: Number(r.signed_at) }));
}

/** The role and requester of each request, for events that name it (OCSF output). */
export async function requestContexts(
  q: Q,
  ids: readonly string[],
): Promise<Record<string, AuditRequestContext>> {
  const out: Record<string, AuditRequestContext> = {};
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += 200) {
    const rows = await q
      .selectFrom('requests')
      .select(['id', 'role', 'requester_iss', 'requester_sub', 'requester_name'])
      .where('id', 'in', unique.slice(i, i + 200))
      .execute();
    for (const r of rows)
      out[r.id] = {
        role: r.role,
        requester: { iss: r.requester_iss, sub: r.requester_sub, name: r.requester_name },
      };
  }
  return out;
}

// Sink cursors.

/** Creates the sink's cursor at `start` if it has none; an existing cursor is kept as it is. */
export async function ensureSinkCursor(
  q: Q,
  name: string,
  start: number,
  now: number,
): Promise<void> {
  await q
    .insertInto('audit_sink_cursors')
    .values({
      name,
      seq: start,
      checkpoint_seq: start,
      delivered_at: null,
      attempts: 0,
      next_attempt_at: 0,
      last_error: null,
      claimed_by: null,
      claimed_until: null,
      created_at: now,
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}

const numeric = (r: AuditSinkCursorRow): AuditSinkCursorRow => ({
  ...r,
  seq: Number(r.seq),
  checkpoint_seq: Number(r.checkpoint_seq),
  next_attempt_at: Number(r.next_attempt_at),
  delivered_at: r.delivered_at === null ? null : Number(r.delivered_at),
  claimed_until: r.claimed_until === null ? null : Number(r.claimed_until),
});

export async function sinkCursors(q: Q, names: readonly string[]): Promise<AuditSinkCursorRow[]> {
  if (names.length === 0) return [];
  const rows = await q
    .selectFrom('audit_sink_cursors')
    .selectAll()
    .where('name', 'in', [...names])
    .execute();
  return rows.map(numeric);
}

/**
 * Takes (or renews) the sink's lease for `owner` until `until`, unless another replica holds it;
 * returns the cursor when the lease is `owner`'s (its `next_attempt_at` says whether a retry is
 * due yet).
 */
export async function claimSink(
  q: Q,
  name: string,
  owner: string,
  now: number,
  until: number,
): Promise<AuditSinkCursorRow | undefined> {
  const r = await q
    .updateTable('audit_sink_cursors')
    .set({ claimed_by: owner, claimed_until: until })
    .where('name', '=', name)
    .where((eb) =>
      eb.or([
        eb('claimed_by', 'is', null),
        eb('claimed_by', '=', owner),
        eb('claimed_until', '<', now),
      ]),
    )
    .returningAll()
    .executeTakeFirst();
  return r ? numeric(r) : undefined;
}

/** Moves the cursor past what was delivered, if `owner` still holds it at `from`. */
export async function advanceSink(
  q: Q,
  name: string,
  owner: string,
  from: { seq: number; checkpoint_seq: number },
  to: { seq: number; checkpoint_seq: number },
  now: number,
): Promise<boolean> {
  const r = await q
    .updateTable('audit_sink_cursors')
    .set({
      seq: to.seq,
      checkpoint_seq: to.checkpoint_seq,
      delivered_at: now,
      attempts: 0,
      next_attempt_at: 0,
      last_error: null,
    })
    .where('name', '=', name)
    .where('claimed_by', '=', owner)
    .where('seq', '=', from.seq)
    .where('checkpoint_seq', '=', from.checkpoint_seq)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Records a failed attempt and when to try again (the lease is kept: order stays with us). */
export async function sinkFailed(
  q: Q,
  name: string,
  owner: string,
  patch: { attempts: number; next_attempt_at: number; last_error: string },
): Promise<void> {
  await q
    .updateTable('audit_sink_cursors')
    .set(patch)
    .where('name', '=', name)
    .where('claimed_by', '=', owner)
    .execute();
}

/** At shutdown: another replica may take the sink over at once. */
export async function releaseSink(q: Q, name: string, owner: string): Promise<void> {
  await q
    .updateTable('audit_sink_cursors')
    .set({ claimed_by: null, claimed_until: null })
    .where('name', '=', name)
    .where('claimed_by', '=', owner)
    .execute();
}

// `jitctl audit verify --db … --checkpoints`: what the checkpoints are compared with.

/** The stored hash of each of `seqs` that exists. */
export async function hashesAt(q: Q, seqs: readonly number[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (let i = 0; i < seqs.length; i += 500) {
    const rows = await q
      .selectFrom('audit_events')
      .select(['seq', 'hash'])
      .where('seq', 'in', seqs.slice(i, i + 500))
      .execute();
    for (const r of rows) out.set(Number(r.seq), r.hash);
  }
  return out;
}

/**
 * The signing keys the log records up to `seq`: `key.created` and `key.retired` name one
 * (data.kid), `key.rotated` the new one and the one it replaced (data.previous), which is how the
 * first key of a broker, created without an event, is on record.
 */
export async function keyEventsUpTo(q: Q, seq: number): Promise<{ seq: number; kid: string }[]> {
  const rows = await q
    .selectFrom('audit_events')
    .select(['seq', 'type', 'data'])
    .where('type', 'in', [...KEY_EVENT_TYPES])
    .where('seq', '<=', seq)
    .orderBy('seq')
    .execute();
  return rows.flatMap((r) => {
    try {
      return keysNamedBy(r.type, JSON.parse(r.data) as Record<string, unknown>).map((kid) => ({
        seq: Number(r.seq),
        kid,
      }));
    } catch {
      return [];
    }
  });
}
