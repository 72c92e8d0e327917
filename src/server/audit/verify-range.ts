import type SqliteDatabase from 'better-sqlite3';
import {
  type ChainPoint,
  type ChainProblem,
  ChainVerifier,
  type StoredEvent,
} from '../../api/audit-chain.js';

/**
 * One range of a SQLite audit log, walked on its own (src/server/audit/log.ts splits a long log
 * into ranges and walks them on worker threads). Every stored event carries its predecessor's
 * hash, so an event's own hash checks without the events before it; only the link between
 * ranges needs them. The range's first event is therefore returned unchecked, for the caller to
 * check against the previous range's end, and the rest is walked from it.
 */
export interface RangeResult {
  /** The range's first event (none when the range holds no rows). */
  first: StoredEvent | null;
  /** The last event after `first` that chained; `count` counts those after `first`. */
  end: ChainPoint;
  /** The first event after `first` that does not chain. */
  problem?: ChainProblem;
}

type Row = [number, string, string, string | null, string | null, string, string, string];

/** Rows per read: pages of arrays read about 10% faster than better-sqlite3's row iterator. */
const PAGE = 1000;

/** Walks the events with `after < seq <= upTo`, in order. */
export function verifySqliteRange(
  db: SqliteDatabase.Database,
  after: number,
  upTo: number,
): RangeResult {
  const page = db
    .prepare(
      `select seq, at, type, request_id, actor, data, prev_hash, hash from audit_events where seq > ? and seq <= ? order by seq limit ${PAGE}`,
    )
    .raw();
  let first: StoredEvent | null = null;
  let verifier: ChainVerifier | undefined;
  let last = after;
  for (;;) {
    const rows = page.all(last, upTo) as Row[];
    for (const [seq, at, type, request_id, actor, data, prev_hash, hash] of rows) {
      const row = { seq, at, type, request_id, actor, data, prev_hash, hash };
      if (!verifier) {
        first = row;
        verifier = new ChainVerifier({ seq, hash, count: 0 });
      } else if (!verifier.pushStored(row)) {
        return {
          first,
          end: verifier.point,
          ...(verifier.problem ? { problem: verifier.problem } : {}),
        };
      }
    }
    if (rows.length < PAGE) break;
    last = rows[rows.length - 1]![0];
  }
  return { first, end: verifier?.point ?? { seq: after, hash: '', count: 0 } };
}
