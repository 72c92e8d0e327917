import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChainVerifier, GENESIS_HASH, type StoredEvent } from '../../src/api/audit-chain.js';
import {
  POSTGRES_HASHED_TEXT,
  verifyPostgresRange,
} from '../../src/server/audit/verify-range-pg.js';
import { columnsOf, storedEvent } from '../support/audit-chain.js';
import { migratedPostgres } from '../support/database.js';

/**
 * verifyPostgresRange reads each event's hashed text as PostgreSQL builds it (to_json(text)) and
 * falls back to the whole row, checked by ChainVerifier.pushStored, when that text does not hash.
 * The text PostgreSQL builds must be byte for byte what JSON.stringify builds for every text the
 * broker can store (else every such row takes the slow way), and the verdict must be the one the
 * old walk (every row whole, through pushStored) gives, whichever way a row went. PostgreSQL
 * text cannot hold NUL nor a lone surrogate: NUL is left out of the plain columns, and a lone
 * surrogate reaches them only as U+FFFD (pg encodes strings as UTF-8); inside actor and data both
 * are stored as JSON escapes, which are plain ASCII.
 */

const HOSTILE = [
  'plain',
  'quote " and backslash \\ and slash / and \\u0041 written out',
  'controls \u0001\u0008\t\n\u000b\f\r\u001b\u001f and DEL \u007f and C1 \u0080\u009f',
  'line separators \u2028 \u2029, BOM \ufeff, U+FFFF \uffff, replacement \ufffd',
  'non-BMP 🚀 𝄞 \u{10ffff} and accents é e\u0301, RTL \u202e',
  "sql-ish ' || '\" -- ; \\\\ $1 %s",
  'lone surrogates in JSON: \ud800 \udfff \udc00\ud800',
];
/** Very long texts, in two events only (each is written to PostgreSQL once per reset). */
const LONG: Record<number, string> = {
  100: 'x'.repeat(70_000),
  150: `long ${'"\\\n\u2028🚀'.repeat(20_000)}`,
};
const N = 240;
/** The plain columns cannot hold NUL nor (as such) a lone surrogate; actor and data can. */
const plain = (s: string) => s.replace(/\u0000/g, '').replace(/[\ud800-\udfff]/g, '');

let client: pg.Client;

let close: (() => Promise<void>) | undefined;
beforeAll(async () => {
  ({ client, close } = await migratedPostgres());
}, 60_000);

afterAll(async () => {
  await close?.();
});

/** The seeded log, as rows of columns; reset() puts it back before each test and tampering. */
const seeded: unknown[][] = [];
{
  let prev = GENESIS_HASH;
  for (let i = 0; i < N; i++) {
    const seq = i + 1;
    const text = LONG[i] ?? HOSTILE[i % HOSTILE.length]!;
    const content = {
      seq,
      at: `2026-12-07T04:00:00.${String(i % 1000).padStart(3, '0')}Z`,
      type: i % 2 ? `request.${plain(text)}` : 'request.created',
      request_id: i % 3 ? `req_${plain(text)}` : null,
      actor: i % 5 ? { iss: 'https://idp', sub: text, name: i % 7 ? text : null } : null,
      data: { reason: text, n: i, nested: { list: [text, 1.5, true, null, '\u0000'] } },
    };
    const event = storedEvent(prev, content);
    seeded.push(columnsOf(event));
    prev = event.hash;
  }
}

async function reset(): Promise<void> {
  const columns = seeded[0]!.map((_, c) => seeded.map((row) => row[c]));
  await client.query('delete from audit_events');
  await client.query(
    `insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash)
       select * from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`,
    columns,
  );
}

beforeEach(reset);

/** The walk before this change: every row whole, in order, through pushStored. */
async function oldWalk(): Promise<{ end: ChainVerifier['point']; problem?: unknown }> {
  const { rows } = await client.query<StoredEvent & { seq: string }>(
    'select * from audit_events order by seq',
  );
  const v = new ChainVerifier();
  for (const row of rows) if (!v.pushStored({ ...row, seq: Number(row.seq) })) break;
  return { end: v.point, ...(v.problem ? { problem: v.problem } : {}) };
}

/** verifyPostgresRange over the whole log, as one walk (its first event checked from genesis). */
async function newWalk(upTo = N) {
  const r = await verifyPostgresRange(client, Number.MIN_SAFE_INTEGER, upTo);
  if (!r.first) return { end: new ChainVerifier().point };
  const seam = new ChainVerifier();
  if (!seam.pushStored(r.first)) return { end: seam.point, problem: seam.problem };
  const end = { ...r.end, count: r.end.count + 1 };
  return { end, ...(r.problem ? { problem: r.problem } : {}) };
}

describe('verifyPostgresRange', () => {
  it('builds the same hashed text as JSON.stringify for hostile texts', async () => {
    const { rows } = await client.query<{
      seq: string;
      prev_hash: string;
      hash: string;
      body: string;
    }>(
      `select seq, prev_hash, hash, ${POSTGRES_HASHED_TEXT} as body from audit_events order by seq`,
    );
    expect(rows).toHaveLength(N);
    const slow = rows.filter(
      (r) => createHash('sha256').update(`${r.prev_hash}\n${r.body}`).digest('hex') !== r.hash,
    );
    expect(slow.map((r) => r.seq)).toEqual([]);
  });

  it('accepts the chain, whole and from inside, as the old walk does', async () => {
    const old = await oldWalk();
    expect(old).toEqual({ end: { seq: N, hash: expect.any(String), count: N } });
    expect(await newWalk()).toEqual(old);
    const part = await verifyPostgresRange(client, 123, N);
    expect(part.first?.seq).toBe(124);
    expect(part.problem).toBeUndefined();
    expect(part.end).toEqual({ seq: N, hash: old.end.hash, count: N - 124 });
    // The walk's transaction is over: the connection is usable again.
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });

  it('walks a freshly loaded log (no statistics) and far-flung seq values in work bounded by the rows', async () => {
    // A log just restored has no statistics; a row slipped in far below or between the events
    // must neither make the walk step through the empty seq values nor go unnamed.
    await client.query(
      `insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash)
         select -9000000000000000, at, type, request_id, actor, data, prev_hash, hash
         from audit_events where seq = 1`,
    );
    const old = await oldWalk();
    expect(old.problem).toBeDefined();
    expect(await newWalk()).toEqual(old); // stepping through the empty seq values: never ends
    await reset();
    await client.query('delete from audit_events where seq between 20 and 60');
    expect(await newWalk()).toEqual(await oldWalk());
  });

  it.each([
    ['type', "'request.' || 'changed'"],
    ['request_id', "request_id || ' '"],
    ['request_id', 'null'],
    ['actor', "replace(actor, 'https://idp', 'https://evil')"],
    ['actor', 'null'],
    ['actor', "'null'"],
    ['data', `replace(data, '"n":', '"n":1')`],
    ['data', `replace(data, '\\u0000', '\\u0001')`],
    ['at', "'2026-12-07T04:00:00.999Z'"],
    ['hash', 'md5(hash) || md5(hash)'],
    ['prev_hash', 'md5(prev_hash) || md5(prev_hash)'],
  ])('finds %s changed (%s) at the event the old walk names', async (column, expr) => {
    let tested = 0;
    for (const seq of [8, 101, 151, N]) {
      await reset();
      {
        const changed = await client.query(
          `update audit_events set ${column} = ${expr} where seq = $1 and ${column} is distinct from ${expr}`,
          [seq],
        );
        if (changed.rowCount === 0) continue; // this row had nothing the expression changes
        const old = await oldWalk();
        expect(await newWalk()).toEqual(old);
        // Writing 'null' for a null actor means the same (both hash as null): the chain holds.
        if (old.problem) {
          expect(old.problem).toMatchObject({ seq });
          tested++;
        }
      }
    }
    expect(tested).toBeGreaterThan(0);
  });

  it('accepts text re-serialized with the same meaning, as the old walk does', async () => {
    for (const seq of [5, 6, 151, 200]) {
      const { rows } = await client.query('select actor, data from audit_events where seq = $1', [
        seq,
      ]);
      const { actor, data } = rows[0] as { actor: string | null; data: string };
      await client.query('update audit_events set actor = $2, data = $3 where seq = $1', [
        seq,
        actor === null ? null : JSON.stringify(JSON.parse(actor), null, 1),
        JSON.stringify(JSON.parse(data), null, 2),
      ]);
    }
    const old = await oldWalk();
    expect(old.problem).toBeUndefined();
    expect(await newWalk()).toEqual(old);
  });

  it('names an event the broker hashed with a lone surrogate, stored as U+FFFD, as the old walk does', async () => {
    const { rows } = await client.query<{ hash: string }>(
      'select hash from audit_events where seq = $1',
      [N],
    );
    const content = {
      seq: N + 1,
      at: '2026-12-07T05:00:00.000Z',
      type: 'request.created',
      request_id: 'req_\ud800',
      actor: null,
      data: { reason: 'x' },
    };
    const prev = rows[0]!.hash;
    await client.query(
      'insert into audit_events values ($1, $2, $3, $4, $5, $6, $7, $8)',
      columnsOf(storedEvent(prev, content)),
    );
    const stored = await client.query('select request_id from audit_events where seq = $1', [
      N + 1,
    ]);
    expect(stored.rows[0].request_id).toBe('req_\ufffd');
    const old = await oldWalk();
    expect(old.problem).toEqual({
      seq: N + 1,
      reason: "hash does not match the event's content (changed after it was written)",
    });
    expect(await newWalk(N + 1)).toEqual(old);
  });

  it('names a row removed, reordered, or slipped in as the old walk does', async () => {
    for (const tamper of [
      'delete from audit_events where seq = 77',
      // Two events swapped: each keeps its content and hashes, under the other's seq.
      'update audit_events set seq = -150 where seq = 150; update audit_events set seq = 150 where seq = 151; update audit_events set seq = 151 where seq = -150',
      `insert into audit_events select -3, at, type, request_id, actor, data, prev_hash, hash from audit_events where seq = 1`,
    ]) {
      await reset();
      await client.query(tamper);
      const old = await oldWalk();
      expect(old.problem).toBeDefined();
      expect(await newWalk()).toEqual(old);
    }
  });
});
