import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type ChainPoint,
  ChainVerifier,
  canonicalJson,
  GENESIS_HASH,
  type StoredEvent,
  storedEventHash,
} from '../../src/api/audit-chain.js';
import { EVENT_COLUMNS } from '../support/audit-chain.js';
import { runCli, testHome } from '../support/cli.js';
import { migratedPostgres } from '../support/database.js';

/**
 * `jitctl audit verify --db postgres://…` walks the log in ranges on worker threads (each with its
 * own connection, the hashed text built by PostgreSQL) and checks the seams in order. Whatever is
 * tampered with, and wherever (inside a range, across its pages, on the seam, at the
 * ends), the verdict must be the one of the walk before this change: every row read whole, in
 * order, through ChainVerifier.pushStored, then the head checked. The split walk is the built
 * binary with two threads over 40,000 events (the second range starts after 20,000).
 */

const EVENTS = 40_000;
const home = testHome();
let dbUrl: string;
let close: (() => Promise<void>) | undefined;
let client: pg.Client;

function eventOf(seq: number, prev: string): StoredEvent {
  const content = {
    seq,
    at: new Date(1_750_000_000_000 + seq * 1000).toISOString(),
    type: seq % 2 ? 'request.created' : 'credential.minted',
    request_id: seq % 7 ? `req_${String(seq).padStart(12, 'x')}` : null,
    actor:
      seq % 5 ? canonicalJson({ iss: 'https://idp', name: 'Zoë "Z"', sub: `u${seq % 13}` }) : null,
    data: canonicalJson({ n: seq, reason: `INC-${seq} \u202e\\ \n`, role: 'prod-deploy' }),
  };
  return { ...content, prev_hash: prev, hash: storedEventHash(prev, content) };
}

beforeAll(async () => {
  ({ url: dbUrl, client, close } = await migratedPostgres());
  const rows: StoredEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= EVENTS; seq++) {
    const row = eventOf(seq, prev);
    rows.push(row);
    prev = row.hash;
  }
  await client.query(
    `insert into audit_events (${EVENT_COLUMNS.join(', ')})
       select * from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`,
    EVENT_COLUMNS.map((k) => rows.map((r) => r[k])),
  );
  await client.query('update audit_head set seq = $1, hash = $2 where id = 1', [EVENTS, prev]);
}, 120_000);

afterAll(async () => {
  await close?.();
  home.cleanup();
});

/** Each test's tampering, undone before the next test. */
const undo: string[] = [];
beforeEach(async () => {
  for (const u of undo.splice(0).reverse()) await client.query(u);
});

/** Runs `sql` now, and puts the rows `seqs` (and the head) back as they were before the next test. */
async function tamper(seqs: number[], sql: string): Promise<void> {
  const table = `saved_${undo.length}`;
  const list = seqs.join(', ');
  await client.query(
    `create temporary table ${table} as select * from audit_events where seq = any('{${list}}'::bigint[]);
     create temporary table ${table}_head as select * from audit_head`,
  );
  await client.query(sql);
  undo.push(
    `delete from audit_events where seq = any('{${list}}'::bigint[]) or seq > ${EVENTS};
     insert into audit_events select * from ${table};
     update audit_head set seq = h.seq, hash = h.hash from ${table}_head h;
     drop table ${table}; drop table ${table}_head`,
  );
}

/** The walk before this change: every row whole, in order, then the head's checks. */
async function oldWalk() {
  const head = (
    await client.query(
      'select seq, hash, (select max(seq) from audit_events) as max from audit_head',
    )
  ).rows[0] as { seq: string; hash: string; max: string };
  const { rows } = await client.query<StoredEvent & { seq: string }>(
    'select * from audit_events where seq <= $1 order by seq',
    [head.seq],
  );
  const v = new ChainVerifier();
  const fail = (at: ChainPoint, problem: { seq: number; reason: string }) => ({
    ok: false,
    events: at.count,
    head: at.hash,
    bad_event: problem.seq,
    reason: problem.reason,
  });
  for (const row of rows)
    if (!v.pushStored({ ...row, seq: Number(row.seq) })) return fail(v.point, v.problem!);
  const headSeq = Number(head.seq);
  const at = v.point;
  if (at.seq < headSeq)
    return fail(at, {
      seq: at.seq + 1,
      reason: `${headSeq === at.seq + 1 ? `event ${headSeq} is` : `events ${at.seq + 1}…${headSeq} are`} missing (the head says the log has ${headSeq} events)`,
    });
  if (head.hash !== at.hash)
    return fail(at, { seq: headSeq, reason: `the head's hash does not match event ${headSeq}` });
  if (Number(head.max) > headSeq)
    return fail(at, {
      seq: headSeq + 1,
      reason: `event ${headSeq + 1} is past the head (${headSeq}): added outside the broker`,
    });
  return { ok: true, events: at.count, head: at.hash };
}

/** The binary's verdict on two worker threads, which must be the old walk's; returns it. */
async function verdict() {
  const r = await runCli(['audit', 'verify', '--db', dbUrl, '--json'], {
    env: { ...home.env, JITCTL_VERIFY_THREADS: '2', JITCTL_DEBUG: '1' },
    timeoutMs: 60_000,
  });
  expect(r.stderr).toBe('debug: audit verify walked 2 ranges on worker threads\n');
  const split = JSON.parse(r.stdout) as { ok: boolean };
  expect(r.code).toBe(split.ok ? 0 : 1);
  expect(split).toEqual(await oldWalk());
  return split;
}

const CHANGED = "hash does not match the event's content (changed after it was written)";

describe('jitctl audit verify --db postgres with worker threads', () => {
  it('agrees on an intact log', async () => {
    expect(await verdict()).toMatchObject({ ok: true, events: EVENTS });
  });

  it.each([
    ['inside the first range', 777],
    ['on the first event of the second page', 10_001],
    ['on the last event of the first range', 20_000],
    ['on the first event of the second range', 20_001],
    ['on the last event', EVENTS],
  ])('agrees on changed data %s', async (_where, seq) => {
    await tamper(
      [seq],
      `update audit_events set data = replace(data, '"n":', '"n":1') where seq = ${seq}`,
    );
    expect(await verdict()).toMatchObject({ ok: false, bad_event: seq, reason: CHANGED });
  });

  it.each([
    ['hash', 12_345],
    ['hash', 20_001],
    ['prev_hash', 12_345],
    ['prev_hash', 20_001],
  ])('agrees on a changed %s at %i', async (column, seq) => {
    await tamper([seq], `update audit_events set ${column} = upper(${column}) where seq = ${seq}`);
    expect(await verdict()).toMatchObject({
      ok: false,
      bad_event: seq,
      reason: column === 'hash' ? CHANGED : "prev_hash does not match the previous event's hash",
    });
  });

  it.each([
    ['in the middle of a range', 5_000],
    ['at the seam', 20_001],
  ])('agrees on a row deleted %s', async (_where, seq) => {
    await tamper([seq], `delete from audit_events where seq = ${seq}`);
    expect(await verdict()).toMatchObject({
      ok: false,
      bad_event: seq + 1,
      reason: `expected event ${seq} next but found ${seq + 1} (events missing or reordered)`,
    });
  });

  it.each([
    ['in the middle of a range', 7_000],
    ['across the seam', 20_000],
  ])('agrees on two events reordered %s', async (_where, seq) => {
    await tamper(
      [seq, seq + 1],
      `update audit_events set seq = -1 where seq = ${seq}; update audit_events set seq = ${seq} where seq = ${seq + 1}; update audit_events set seq = ${seq + 1} where seq = -1`,
    );
    expect(await verdict()).toMatchObject({
      ok: false,
      bad_event: seq,
      reason: "prev_hash does not match the previous event's hash",
    });
  });

  it('agrees on a tail cut off and on a row past the head', async () => {
    await tamper([], `update audit_head set seq = ${EVENTS + 2}`);
    expect(await verdict()).toMatchObject({
      ok: false,
      bad_event: EVENTS + 1,
      reason: expect.stringContaining('missing'),
    });
    await client.query(undo.pop()!);
    await tamper(
      [],
      `insert into audit_events select seq + 1, at, type, request_id, actor, data, hash, hash from audit_events where seq = ${EVENTS}`,
    );
    expect(await verdict()).toMatchObject({
      ok: false,
      bad_event: EVENTS + 1,
      reason: expect.stringContaining('past the head'),
    });
  });

  it('agrees that text re-serialized with the same meaning still verifies', async () => {
    await tamper(
      [3, 20_001, 39_999],
      'update audit_events set data = jsonb_pretty(data::jsonb) where seq in (3, 20001, 39999)',
    );
    expect(await verdict()).toMatchObject({ ok: true, events: EVENTS });
  });
});
