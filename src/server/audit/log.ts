import { type Kysely, sql } from 'kysely';
import {
  type ChainedContent,
  ChainVerifier,
  canonicalJson,
  storedEventHash,
} from '../../api/audit-chain.js';
import type { AuditEvent, AuditEventType, Identity } from '../../api/schemas.js';
import { AuditAppendError } from '../errors.js';
import type { Db, Dialect } from '../store/database.js';
import type { AuditRow, Database } from '../store/schema.js';

/**
 * The append-only, hash-chained audit log (src/api/audit-chain.ts defines the chain). Appends run
 * inside the caller's transaction, after the change they record, so the change and its events
 * commit together or not at all (fail closed). The head row is locked for the append: on
 * PostgreSQL concurrent transactions (and replicas) queue on it and extend one chain.
 */

export interface NewAuditEvent {
  type: AuditEventType;
  request_id: string | null;
  actor: Identity | null;
  /** Ids, roles, durations, decisions, comments, reasons, jti and exp: never a token. */
  data: Record<string, unknown>;
}

/** Appends `events` in order; returns them as written. Throws AuditAppendError on any failure. */
export async function appendAudit(
  tx: Kysely<Database>,
  dialect: Dialect,
  now: number,
  events: NewAuditEvent[],
): Promise<AuditEvent[]> {
  try {
    let q = tx.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1);
    if (dialect === 'postgres') q = q.forUpdate();
    const head = await q.executeTakeFirst();
    if (!head) throw new Error('the audit_head row is missing');
    let seq = head.seq;
    let prev = head.hash;
    const at = new Date(now).toISOString();
    const written: AuditEvent[] = [];
    for (const e of events) {
      seq += 1;
      const content: ChainedContent = {
        seq,
        at,
        type: e.type,
        request_id: e.request_id,
        actor: e.actor ? { iss: e.actor.iss, sub: e.actor.sub, name: e.actor.name } : null,
        data: e.data,
      };
      // Serialized once: the stored text is exactly what is hashed.
      const actor = content.actor ? canonicalJson(content.actor) : null;
      const data = canonicalJson(e.data);
      const hash = storedEventHash(prev, {
        seq,
        at,
        type: e.type,
        request_id: e.request_id,
        actor,
        data,
      });
      await tx
        .insertInto('audit_events')
        .values({
          seq,
          at,
          type: e.type,
          request_id: e.request_id,
          actor,
          data,
          prev_hash: prev,
          hash,
        })
        .execute();
      written.push({ ...content, prev_hash: prev, hash });
      prev = hash;
    }
    await tx.updateTable('audit_head').set({ seq, hash: prev }).where('id', '=', 1).execute();
    return written;
  } catch (err) {
    throw new AuditAppendError(
      `the audit log could not record the change: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export function rowToEvent(row: AuditRow): AuditEvent {
  return {
    seq: row.seq,
    at: row.at,
    type: row.type,
    request_id: row.request_id,
    actor: row.actor === null ? null : (JSON.parse(row.actor) as Identity),
    data: JSON.parse(row.data) as Record<string, unknown>,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}

/** Events with seq > after, in order, at most `limit`. */
export async function readAudit(
  db: Kysely<Database>,
  after: number,
  limit: number,
): Promise<AuditEvent[]> {
  const rows = await db
    .selectFrom('audit_events')
    .selectAll()
    .where('seq', '>', after)
    .orderBy('seq', 'asc')
    .limit(limit)
    .execute();
  return rows.map(rowToEvent);
}

export interface VerifyResult {
  ok: boolean;
  /** Events that chained correctly before the first problem (all of them when ok). */
  events: number;
  /** The hash of the last good event (the chain's head when ok). */
  head: string;
  problem?: { seq: number; reason: string };
}

const COLUMNS = 'seq, at, type, request_id, actor, data, prev_hash, hash';

/**
 * Walks the log up to its head, in order, with flat memory. The head row and the highest seq are
 * read first in one statement (one snapshot), so a broker appending meanwhile never looks like
 * tampering, while events cut off the end (head ahead of the rows) or slipped in past the head
 * (rows ahead of the head) are both reported. SQLite rows are iterated as arrays straight from
 * better-sqlite3 (twice as fast as row objects); PostgreSQL is read in keyset pages.
 */
export async function verifyAuditTable(db: Db, pageSize = 10_000): Promise<VerifyResult> {
  const snapshot = await sql<{ seq: number; hash: string; max_seq: number | null }>`
    select seq, hash, (select max(seq) from audit_events) as max_seq from audit_head where id = 1
  `.execute(db.kysely);
  const head = snapshot.rows[0];
  const verifier = new ChainVerifier();
  if (!head) return fail(verifier, 1, 'the audit_head row is missing');
  const headSeq = Number(head.seq);
  let lastSeq = 0;

  if (db.sqlite) {
    const rows = db.sqlite
      .prepare(`select ${COLUMNS} from audit_events where seq <= ? order by seq`)
      .raw()
      .iterate(headSeq) as IterableIterator<
      [number, string, string, string | null, string | null, string, string, string]
    >;
    for (const [seq, at, type, request_id, actor, data, prev_hash, hash] of rows) {
      if (!verifier.pushStored({ seq, at, type, request_id, actor, data, prev_hash, hash })) {
        rows.return?.();
        return fail(verifier);
      }
      lastSeq = seq;
    }
  } else {
    for (;;) {
      const rows = await db.kysely
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', '>', lastSeq)
        .where('seq', '<=', headSeq)
        .orderBy('seq', 'asc')
        .limit(pageSize)
        .execute();
      for (const row of rows) {
        if (!verifier.pushStored(row)) return fail(verifier);
        lastSeq = row.seq;
      }
      if (rows.length < pageSize) break;
    }
  }

  if (lastSeq < headSeq) {
    return fail(
      verifier,
      lastSeq + 1,
      `${headSeq === lastSeq + 1 ? `event ${headSeq} is` : `events ${lastSeq + 1}…${headSeq} are`} missing (the head says the log has ${headSeq} events)`,
    );
  }
  if (head.hash !== verifier.lastHash) {
    return fail(verifier, headSeq, `the head's hash does not match event ${headSeq}`);
  }
  const maxSeq = head.max_seq === null ? 0 : Number(head.max_seq);
  if (maxSeq > headSeq) {
    return fail(
      verifier,
      headSeq + 1,
      `event ${headSeq + 1} is past the head (${headSeq}): added outside the broker`,
    );
  }
  return { ok: true, events: verifier.count, head: verifier.lastHash };
}

function fail(verifier: ChainVerifier, seq?: number, reason?: string): VerifyResult {
  const problem = verifier.problem ?? { seq: seq ?? 0, reason: reason ?? 'unknown problem' };
  return { ok: false, events: verifier.count, head: verifier.lastHash, problem };
}
