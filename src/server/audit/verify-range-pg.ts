import type { ClientBase } from 'pg';
import { ChainVerifier, type StoredEvent } from '../../api/audit-chain.js';
import type { RangeResult } from './verify-range.js';

/**
 * One range of a PostgreSQL audit log, walked on its own connection (the PostgreSQL side of
 * src/server/audit/verify-range.ts, same result and same rules): the range's first event is
 * returned unchecked for the caller to check against the previous range's end.
 *
 * Rows are read in keyset pages inside one REPEATABLE READ, READ ONLY transaction (one snapshot
 * for every page and any whole row read beside them), with the plain `pg` client and rows as
 * arrays: kysely's row objects and eight parsed columns per row were most of the CPU of the old
 * walk. (A server-side cursor, FETCH 10,000 at a time, cost PostgreSQL ~0.8 s more CPU per
 * million rows than keyset pages on the primary key: docs/performance.md, section 4.)
 */

/** Rows per page: large enough that round trips do not count, small enough to keep memory flat. */
const PAGE = 10_000;

/**
 * The text an event's hash covers (storedEventHash in src/api/audit-chain.ts), built by
 * PostgreSQL: to_json(text) writes a JSON string literal as JSON.stringify does (the same escapes
 * for quotes, backslashes and control characters, lowercase \u00xx, everything else as is);
 * `seq` is a bigint, printed in decimal as JSON.stringify prints an integer. Where the two could
 * ever differ, or a column is null where it should not be, the hash does not match and the row is
 * read whole and checked the ordinary way (ChainVerifier.pushStored), so this only decides how
 * fast a valid row is accepted. The hash itself is always computed here, never by the database.
 */
export const POSTGRES_HASHED_TEXT = `'{"actor":' || coalesce(actor, 'null') || ',"at":' || to_json(at)::text || ',"data":' || data || ',"request_id":' || coalesce(to_json(request_id)::text, 'null') || ',"seq":' || seq::text || ',"type":' || to_json(type)::text || '}'`;

type Hashed = [string, string, string, string | null];
type Row = [string, string, string, string | null, string | null, string, string, string];

/** Walks the events with `after < seq <= upTo`, in order. */
export async function verifyPostgresRange(
  client: ClientBase,
  after: number,
  upTo: number,
): Promise<RangeResult> {
  await client.query('begin isolation level repeatable read read only');
  try {
    const one = async (seq: number): Promise<StoredEvent> => {
      const r = await client.query<Row>({
        text: 'select seq, at, type, request_id, actor, data, prev_hash, hash from audit_events where seq = $1',
        values: [seq],
        rowMode: 'array',
      });
      const row = r.rows[0];
      // Cannot happen inside one snapshot; kept so a broken assumption is loud, not a wrong verdict.
      if (!row) throw new Error(`audit event ${seq} disappeared during the walk`);
      const [, at, type, request_id, actor, data, prev_hash, hash] = row;
      return { seq, at, type, request_id, actor, data, prev_hash, hash };
    };
    // A page is a range of `seq`, not a LIMIT: a log just loaded or restored has no statistics
    // yet, and the planner then read the whole rest of the range and sorted it on disk for every
    // page (1,000,000 events: 19 s instead of 5). A range holds at most PAGE rows whatever the plan.
    const page = (lo: number): Promise<Hashed[]> => {
      const rows = client
        .query<Hashed>({
          name: 'audit_walk_page',
          text: `select seq, prev_hash, hash, ${POSTGRES_HASHED_TEXT} from audit_events where seq > $1 and seq <= $2 order by seq`,
          values: [lo, Math.min(lo + PAGE, upTo)],
          rowMode: 'array',
        })
        .then((r) => r.rows);
      rows.catch(() => {}); // awaited below, or abandoned when the walk stops early
      return rows;
    };
    let first: StoredEvent | null = null;
    let verifier: ChainVerifier | undefined;
    // The first event above `seq` in the range (a page found none: a gap, or the range's start).
    const firstAbove = async (seq: number): Promise<number | null> => {
      const r = await client.query<[string | null]>({
        text: 'select min(seq) from audit_events where seq > $1 and seq <= $2',
        values: [seq, upTo],
        rowMode: 'array',
      });
      const found = r.rows[0]?.[0];
      return found === null || found === undefined ? null : Number(found);
    };
    let lo = after;
    let next: Promise<Hashed[]> | null = page(lo);
    while (next) {
      let rows = await next;
      next = null;
      if (rows.length === 0) {
        // Nothing in this page's span: jump to the next event, if any (one indexed lookup; the
        // walk's work stays bounded by the rows, whatever seq values a tampered log holds).
        const lowest = await firstAbove(lo);
        if (lowest === null) break;
        rows = await page(lowest - 1);
      }
      lo = Number(rows[rows.length - 1]![0]);
      // The next page is asked for before this one is hashed, so PostgreSQL reads and sends it
      // meanwhile (pg sends a queued query as soon as the previous one completes).
      if (lo < upTo) next = page(lo);
      for (const [seqText, prev_hash, hash, body] of rows) {
        const seq = Number(seqText);
        if (!verifier) {
          first = await one(seq);
          verifier = new ChainVerifier({ seq, hash, count: 0 });
        } else if (
          !verifier.pushBody(seq, prev_hash, hash, body) &&
          !verifier.pushStored(await one(seq))
        ) {
          return {
            first,
            end: verifier.point,
            ...(verifier.problem ? { problem: verifier.problem } : {}),
          };
        }
      }
    }
    return { first, end: verifier?.point ?? { seq: after, hash: '', count: 0 } };
  } finally {
    // Read only: nothing to keep.
    await client.query('rollback').catch(() => {});
  }
}
