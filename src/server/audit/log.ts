import { type Kysely, sql } from 'kysely';
import {
  type ChainPoint,
  ChainVerifier,
  canonicalJson,
  storedEventHash,
} from '../../api/audit-chain.js';
import type { AuditEvent, AuditEventType, Identity } from '../../api/schemas.js';
import { CHANGE_CHANNEL } from '../changes.js';
import { AuditAppendError } from '../errors.js';
import { type AllColumns, reusable, reusableInsert } from '../store/compiled.js';
import type { Db, Dialect } from '../store/database.js';
import type { AuditRow, Database } from '../store/schema.js';
import { AUDIT_APPENDED } from './feed.js';
import { type LogSource, walkRanges } from './verify-walk.js';

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

// The append's statements, compiled once (store/compiled.ts): they run in every write.
const headRow = reusable((q, id) =>
  q
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .where('id', '=', id as number),
);
const lockedHead = reusable((q, channel, appended, id) =>
  q
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .select(sql<string>`pg_notify(${channel}, ${appended})`.as('woke'))
    .where('id', '=', id as number)
    .forUpdate(),
);
const AUDIT_COLUMNS = [
  'seq',
  'at',
  'type',
  'request_id',
  'actor',
  'data',
  'prev_hash',
  'hash',
] as const satisfies readonly (keyof AuditRow)[];
true satisfies AllColumns<AuditRow, typeof AUDIT_COLUMNS>;
const insertEvents = reusableInsert<AuditRow>('audit_events', AUDIT_COLUMNS);
const updateHead = reusable((q, seq, hash, id) =>
  q
    .updateTable('audit_head')
    .set({ seq: seq as number, hash: hash as string })
    .where('id', '=', id as number),
);

/** Appends `events` in order. Throws AuditAppendError on any failure. */
export async function appendAudit(
  tx: Kysely<Database>,
  dialect: Dialect,
  now: number,
  events: NewAuditEvent[],
): Promise<void> {
  try {
    // PostgreSQL: lock the head, and tell every replica's audit long polls and sinks once this
    // commits (NOTIFY is delivered at commit), in the same round trip.
    const [head] =
      dialect === 'postgres'
        ? await lockedHead(tx, CHANGE_CHANNEL, AUDIT_APPENDED, 1)
        : await headRow(tx, 1);
    if (!head) throw new Error('the audit_head row is missing');
    let seq = head.seq;
    let prev = head.hash;
    const at = new Date(now).toISOString();
    const rows: AuditRow[] = [];
    for (const e of events) {
      seq += 1;
      // Serialized once: the stored text is exactly what is hashed.
      const stored = {
        seq,
        at,
        type: e.type,
        request_id: e.request_id,
        actor: e.actor
          ? canonicalJson({ iss: e.actor.iss, sub: e.actor.sub, name: e.actor.name })
          : null,
        data: canonicalJson(e.data),
      };
      const hash = storedEventHash(prev, stored);
      rows.push({ ...stored, prev_hash: prev, hash });
      prev = hash;
    }
    // One statement for all the events: on PostgreSQL every round trip here holds the head's lock.
    if (rows.length > 0) await insertEvents(tx, rows);
    await updateHead(tx, seq, prev, 1);
  } catch (err) {
    throw new AuditAppendError(
      `the audit log could not record the change: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

function rowToEvent(row: AuditRow): AuditEvent {
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
  /** How many ranges were walked on worker threads (0: all on this thread). */
  workerThreads?: number;
}

export interface VerifyOptions {
  /**
   * Walk the log on up to this many worker threads, each with its own connection (default 1:
   * this thread only). The CLI passes the number of cores: hashing a million events is seconds
   * of CPU, and every event carries its predecessor's hash, so ranges check independently and
   * only their seams are checked in order here. Verdicts and messages are those of one walk from
   * the start.
   */
  threads?: number;
}

/**
 * Walks the log up to its head, in order, with flat memory. The head row and the highest seq are
 * read first in one statement (one snapshot), so a broker appending meanwhile never looks like
 * tampering, while events cut off the end (head ahead of the rows) or slipped in past the head
 * (rows ahead of the head) are both reported. Each event's hashed text is built by the database
 * and hashed here (src/server/audit/verify-range.ts, verify-range-pg.ts), in ranges on worker
 * threads with `threads` (src/server/audit/verify-walk.ts).
 */
export async function verifyAuditTable(db: Db, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const snapshot = await sql<{ seq: number; hash: string; max_seq: number | null }>`
    select seq, hash, (select max(seq) from audit_events) as max_seq from audit_head where id = 1
  `.execute(db.kysely);
  const head = snapshot.rows[0];
  if (!head)
    return failAt(new ChainVerifier().point, { seq: 1, reason: 'the audit_head row is missing' });
  const headSeq = Number(head.seq);
  const source: LogSource = db.sqlite
    ? { kind: 'sqlite', handle: db.sqlite }
    : { kind: 'postgres', url: db.postgresUrl! };
  let at = new ChainVerifier().point;
  const walked = await walkRanges(source, headSeq, opts.threads ?? 1);
  const workerThreads = walked.workers;
  for (const range of walked.ranges) {
    if (!range.first) continue;
    // The seam: the range's first event against the end of the ranges before it.
    const seam = new ChainVerifier(at);
    if (!seam.pushStored(range.first)) return failAt(seam.point, seam.problem!, workerThreads);
    const end = { ...range.end, count: seam.count + range.end.count };
    if (range.problem) return failAt(end, range.problem, workerThreads);
    at = end;
  }

  const lastSeq = at.seq;
  if (lastSeq < headSeq) {
    return failAt(
      at,
      {
        seq: lastSeq + 1,
        reason: `${headSeq === lastSeq + 1 ? `event ${headSeq} is` : `events ${lastSeq + 1}…${headSeq} are`} missing (the head says the log has ${headSeq} events)`,
      },
      workerThreads,
    );
  }
  if (head.hash !== at.hash) {
    return failAt(
      at,
      { seq: headSeq, reason: `the head's hash does not match event ${headSeq}` },
      workerThreads,
    );
  }
  const maxSeq = head.max_seq === null ? 0 : Number(head.max_seq);
  if (maxSeq > headSeq) {
    return failAt(
      at,
      {
        seq: headSeq + 1,
        reason: `event ${headSeq + 1} is past the head (${headSeq}): added outside the broker`,
      },
      workerThreads,
    );
  }
  return { ok: true, events: at.count, head: at.hash, ...workersOf(workerThreads) };
}

function failAt(
  at: ChainPoint,
  problem: { seq: number; reason: string },
  workerThreads?: number,
): VerifyResult {
  return { ok: false, events: at.count, head: at.hash, problem, ...workersOf(workerThreads) };
}

const workersOf = (n: number | undefined) => (n === undefined ? {} : { workerThreads: n });
