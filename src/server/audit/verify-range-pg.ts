import type { ClientBase } from 'pg';
import { ChainVerifier, type StoredEvent } from '../../api/audit-chain.js';
import type { RangeResult } from './verify-range.js';

/**
 * One range of a PostgreSQL audit log, walked on its own connection (the PostgreSQL side of
 * src/server/audit/verify-range.ts, same result and same rules): the range's first event is
 * returned unchecked for the caller to check against the previous range's end.
 *
 * Rows are read through a server-side cursor in one REPEATABLE READ, READ ONLY transaction (one
 * snapshot for the cursor and for any whole row read beside it), with the plain `pg` client and
 * rows as arrays: kysely's row objects and eight parsed columns per row were most of the CPU of
 * the old walk.
 */

/** Rows per FETCH: large enough that round trips do not count, small enough to keep memory flat. */
const FETCH = 10_000;

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
    await client.query({
      text: `declare audit_walk no scroll cursor for select seq, prev_hash, hash, ${POSTGRES_HASHED_TEXT} from audit_events where seq > $1 and seq <= $2 order by seq`,
      values: [after, upTo],
    });
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
    let first: StoredEvent | null = null;
    let verifier: ChainVerifier | undefined;
    for (;;) {
      const { rows } = await client.query<Hashed>({
        text: `fetch ${FETCH} from audit_walk`,
        rowMode: 'array',
      });
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
      if (rows.length < FETCH) break;
    }
    return { first, end: verifier?.point ?? { seq: after, hash: '', count: 0 } };
  } finally {
    // Read only: nothing to keep. Also closes the cursor.
    await client.query('rollback').catch(() => {});
  }
}
