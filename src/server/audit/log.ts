import type { Kysely } from 'kysely';
import {
  type ChainedContent,
  ChainVerifier,
  canonicalJson,
  eventHash,
} from '../../api/audit-chain.js';
import type { AuditEvent, Identity } from '../../api/schemas.js';
import { AuditAppendError } from '../errors.js';
import type { Dialect } from '../store/database.js';
import type { AuditRow, Database } from '../store/schema.js';

/**
 * The append-only, hash-chained audit log (src/api/audit-chain.ts defines the chain). Appends run
 * inside the caller's transaction, after the change they record, so the change and its events
 * commit together or not at all (fail closed). The head row is locked for the append: on
 * PostgreSQL concurrent transactions (and replicas) queue on it and extend one chain.
 */

export type AuditEventType =
  | 'request.created'
  | 'review.recorded'
  | 'request.approved'
  | 'request.denied'
  | 'request.cancelled'
  | 'request.expired'
  | 'request.revoked'
  | 'credential.minted';

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
      const hash = eventHash(prev, content);
      await tx
        .insertInto('audit_events')
        .values({
          seq,
          at,
          type: e.type,
          request_id: e.request_id,
          actor: content.actor ? canonicalJson(content.actor) : null,
          data: canonicalJson(e.data),
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

/**
 * Walks the whole table in pages (keyset on seq, so memory stays flat for millions of rows), then
 * checks that the head row names the last event: a log cut off at its end would otherwise verify.
 */
export async function verifyAuditTable(
  db: Kysely<Database>,
  pageSize = 10_000,
): Promise<VerifyResult> {
  const verifier = new ChainVerifier();
  let after = 0;
  let lastSeq = 0;
  for (;;) {
    const rows = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '>', after)
      .orderBy('seq', 'asc')
      .limit(pageSize)
      .execute();
    for (const row of rows) {
      let event: AuditEvent;
      try {
        event = rowToEvent(row);
      } catch {
        return fail(
          verifier,
          row.seq,
          'actor or data is not valid JSON (changed after it was written)',
        );
      }
      if (!verifier.push(event)) return fail(verifier);
      lastSeq = row.seq;
    }
    if (rows.length < pageSize) break;
    after = lastSeq;
  }
  const head = await db
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .where('id', '=', 1)
    .executeTakeFirst();
  if (!head) return fail(verifier, lastSeq + 1, 'the audit_head row is missing');
  if (head.seq !== lastSeq || head.hash !== verifier.lastHash) {
    return fail(
      verifier,
      head.seq > lastSeq ? lastSeq + 1 : head.seq,
      head.seq > lastSeq
        ? `events ${lastSeq + 1}…${head.seq} are missing (the head says the log has ${head.seq} events)`
        : `the head (event ${head.seq}, ${head.hash.slice(0, 12)}…) does not match the last event`,
    );
  }
  return { ok: true, events: verifier.count, head: verifier.lastHash };
}

function fail(verifier: ChainVerifier, seq?: number, reason?: string): VerifyResult {
  const problem = verifier.problem ?? { seq: seq ?? 0, reason: reason ?? 'unknown problem' };
  return { ok: false, events: verifier.count, head: verifier.lastHash, problem };
}
