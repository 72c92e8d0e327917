import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, GENESIS_HASH, storedEventHash } from '../../src/api/audit-chain.js';
import { verifyAuditTable } from '../../src/server/audit/log.js';
import { openDatabase, parseDatabaseUrl } from '../../src/server/store/database.js';
import { migrateToLatest } from '../../src/server/store/migrations.js';
import { runCli, testHome } from '../support/cli.js';

/**
 * `jitctl audit verify --db sqlite:…` splits a long log into ranges walked on worker threads and
 * checks the seams in order. Whatever is tampered with, and wherever (inside a range, on a seam,
 * before the first event, at the end), the verdict must be the one a single walk from the start
 * gives: the same first bad event, reason, count and last good hash. The single walk is
 * verifyAuditTable on this thread (the sources have no worker bundle); the split walk is the
 * built binary with four threads over 80,000 events (ranges start after 20,000, 40,000, 60,000).
 */

const EVENTS = 80_000;
const home = testHome();
let dir: string;
let path: string;
let db: Database.Database;

interface Row {
  seq: number;
  at: string;
  type: string;
  request_id: string | null;
  actor: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

function eventOf(seq: number, prev: string): Row {
  const content = {
    seq,
    at: new Date(1_750_000_000_000 + seq * 1000).toISOString(),
    type: seq % 2 ? 'request.created' : 'credential.minted',
    request_id: seq % 7 ? `req_${String(seq).padStart(12, 'x')}` : null,
    actor: seq % 5 ? canonicalJson({ iss: 'https://idp', name: 'Zoë', sub: `u${seq % 13}` }) : null,
    data: canonicalJson({ n: seq, reason: `INC-${seq} \u202e`, role: 'prod-deploy' }),
  };
  return { ...content, prev_hash: prev, hash: storedEventHash(prev, content) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jitctl-verify-threads-'));
  path = join(dir, 'broker.db');
  const handle = await openDatabase(parseDatabaseUrl(`sqlite:${path}`));
  await migrateToLatest(handle.kysely, handle.dialect);
  await handle.close();
  db = new Database(path);
  const insert = db.prepare(
    'insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash) values (@seq, @at, @type, @request_id, @actor, @data, @prev_hash, @hash)',
  );
  let prev = GENESIS_HASH;
  db.transaction(() => {
    for (let seq = 1; seq <= EVENTS; seq++) {
      const row = eventOf(seq, prev);
      insert.run(row);
      prev = row.hash;
    }
  })();
  db.prepare('update audit_head set seq = ?, hash = ? where id = 1').run(EVENTS, prev);
});

afterAll(() => {
  db?.close();
  rmSync(dir, { recursive: true, force: true });
  home.cleanup();
});

/** Each test's tampering, undone before the next test. */
const undo: Array<() => void> = [];
beforeEach(() => {
  for (const u of undo.splice(0).reverse()) u();
});

function change(seq: number, column: keyof Row, value: string | number): void {
  const before = db.prepare(`select ${column} as v from audit_events where seq = ?`).get(seq) as {
    v: unknown;
  };
  db.prepare(`update audit_events set ${column} = ? where seq = ?`).run(value, seq);
  undo.push(() =>
    db.prepare(`update audit_events set ${column} = ? where seq = ?`).run(before.v, seq),
  );
}

function remove(from: number, to: number): void {
  const rows = db
    .prepare('select * from audit_events where seq between ? and ?')
    .all(from, to) as Row[];
  db.prepare('delete from audit_events where seq between ? and ?').run(from, to);
  undo.push(() => {
    const insert = db.prepare(
      'insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash) values (@seq, @at, @type, @request_id, @actor, @data, @prev_hash, @hash)',
    );
    for (const r of rows) insert.run(r);
  });
}

async function verdicts() {
  const single = await (async () => {
    const handle = await openDatabase(parseDatabaseUrl(`sqlite:${path}`), { readonly: true });
    try {
      return await verifyAuditTable(handle);
    } finally {
      await handle.close();
    }
  })();
  const r = await runCli(['audit', 'verify', '--db', `sqlite:${path}`, '--json'], {
    env: { ...home.env, JITCTL_VERIFY_THREADS: '4' },
    timeoutMs: 60_000,
  });
  expect(r.stderr).toBe('');
  const split = JSON.parse(r.stdout) as {
    ok: boolean;
    events: number;
    head: string;
    bad_event?: number;
    reason?: string;
  };
  expect(r.code).toBe(split.ok ? 0 : 1);
  expect(split).toEqual({
    ok: single.ok,
    events: single.events,
    head: single.head,
    ...(single.problem ? { bad_event: single.problem.seq, reason: single.problem.reason } : {}),
  });
  return single;
}

describe('jitctl audit verify --db sqlite with worker threads', () => {
  it('agrees on an intact log, walked on four worker threads', async () => {
    expect(await verdicts()).toMatchObject({ ok: true, events: EVENTS });
    const r = await runCli(['audit', 'verify', '--db', `sqlite:${path}`], {
      env: { ...home.env, JITCTL_VERIFY_THREADS: '4', JITCTL_DEBUG: '1' },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('debug: audit verify walked 4 ranges on worker threads\n');
  });

  it.each([
    ['inside the second range', 22_222],
    ['on the first event of the third range', 40_001],
    ['on the last event of the third range', 60_000],
    ['on the last event', EVENTS],
  ])('agrees on changed content %s', async (_where, seq) => {
    change(seq, 'data', '{"n":1,"role":"admin"}');
    expect(await verdicts()).toMatchObject({
      ok: false,
      events: seq - 1,
      problem: { seq, reason: expect.stringContaining('changed after it was written') },
    });
  });

  it('agrees on a broken link at a seam', async () => {
    change(20_001, 'prev_hash', 'f'.repeat(64));
    expect(await verdicts()).toMatchObject({
      ok: false,
      events: 20_000,
      problem: { seq: 20_001, reason: expect.stringContaining('prev_hash') },
    });
  });

  it('agrees on events removed across a seam', async () => {
    remove(39_998, 40_003);
    expect(await verdicts()).toMatchObject({
      ok: false,
      events: 39_997,
      problem: { seq: 40_004, reason: expect.stringContaining('expected event 39998') },
    });
  });

  it('agrees on a whole range removed', async () => {
    remove(20_001, 40_000);
    expect(await verdicts()).toMatchObject({
      ok: false,
      events: 20_000,
      problem: { seq: 40_001, reason: expect.stringContaining('expected event 20001') },
    });
  });

  it('agrees on a row slipped in before the first event', async () => {
    const row = eventOf(1, GENESIS_HASH);
    db.prepare(
      'insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash) values (@seq, @at, @type, @request_id, @actor, @data, @prev_hash, @hash)',
    ).run({ ...row, seq: -3 });
    undo.push(() => db.prepare('delete from audit_events where seq = -3').run());
    expect(await verdicts()).toMatchObject({
      ok: false,
      events: 0,
      problem: { seq: -3, reason: expect.stringContaining('expected event 1') },
    });
  });

  it('agrees on a tail cut off', async () => {
    remove(EVENTS - 9, EVENTS);
    expect(await verdicts()).toMatchObject({
      ok: false,
      events: EVENTS - 10,
      problem: { seq: EVENTS - 9, reason: expect.stringContaining('missing') },
    });
  });

  it('agrees that text re-serialized with the same meaning still verifies', async () => {
    const { data } = db.prepare('select data from audit_events where seq = 50000').get() as {
      data: string;
    };
    change(50_000, 'data', JSON.stringify(JSON.parse(data), null, 2));
    expect(await verdicts()).toMatchObject({ ok: true, events: EVENTS });
  });

  it('refuses a thread count that is not a whole number', async () => {
    const r = await runCli(['audit', 'verify', '--db', `sqlite:${path}`], {
      env: { ...home.env, JITCTL_VERIFY_THREADS: 'lots' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('JITCTL_VERIFY_THREADS "lots": give a whole number from 1 to 64');
  });
});
