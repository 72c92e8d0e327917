/**
 * What each index of `requests` costs a write: a migrated SQLite file (WAL, synchronous=NORMAL,
 * as the broker opens it) seeded with `--rows` requests, then lifecycles of three transactions
 * (insert pending; approve; revoke: state and timestamps updated), one index dropped per variant,
 * variants alternated round by round. Prints CPU µs per lifecycle (user + system of this process).
 *
 *   npx tsx bench/index-cost.ts [--rows 20000] [--lifecycles 3000] [--rounds 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase, parseDatabaseUrl } from '../src/server/store/database.js';
import { migrateToLatest } from '../src/server/store/migrations.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '20000' },
    lifecycles: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
  },
});
const ROWS = Number(values.rows);
const N = Number(values.lifecycles);

async function variant(drop: string | undefined, dir: string): Promise<number> {
  const path = join(dir, `${drop ?? 'all'}-${Math.random().toString(36).slice(2)}.db`);
  const db = await openDatabase(parseDatabaseUrl(`sqlite:${path}`));
  await migrateToLatest(db.kysely, db.dialect);
  const s = db.sqlite;
  if (!s) throw new Error('not sqlite');
  if (drop) s.exec(`drop index ${drop}`);
  const cols =
    'id, role, state, requester_iss, requester_sub, duration_ms, created_at, expires_at, approvals_required, denials_required, approvers, fingerprint, idempotency_key, idempotency_hash';
  const ins = s.prepare(
    `insert into requests (${cols}) values (?, ?, 'pending', 'https://idp', ?, 60000, ?, ?, 1, 1, '[]', 'f', ?, 'h')`,
  );
  const approve = s.prepare(
    `update requests set state = 'approved', approved_at = ?, expires_at = ?, review_count = 1 where id = ?`,
  );
  const revoke = s.prepare(`update requests set state = 'revoked', ended_at = ? where id = ?`);
  let t = 1_800_000_000_000;
  const one = (i: string, tx: boolean) => {
    const go = () =>
      ins.run(i, `role-${i.length % 7}`, `user-${Number(i.slice(1)) % 300}`, t, t + 600_000, i);
    if (!tx) return go();
    s.exec('begin immediate');
    go();
    s.exec('commit');
    s.exec('begin immediate');
    approve.run(t, t + 3_600_000, i);
    s.exec('commit');
    s.exec('begin immediate');
    revoke.run(t + 1, i);
    s.exec('commit');
  };
  s.exec('begin');
  for (let i = 0; i < ROWS; i++) {
    t += 1;
    one(`s${i}`, false);
  }
  s.exec('commit');
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    t += 1;
    one(`l${i}`, true);
  }
  const used = process.cpuUsage(before);
  await db.close();
  rmSync(path, { force: true });
  return (used.user + used.system) / N;
}

const INDEXES = [
  undefined,
  'requests_state_seq',
  'requests_requester_seq',
  'requests_role_seq',
  'requests_role_state_seq',
  'requests_state_expires',
  'requests_break_glass_review_by',
  'requests_created',
  'requests_role_requester_created',
  'requests_requester_role_state',
].filter((x) => !values.only || x === undefined || values.only.split(',').includes(x));
const dir = mkdtempSync(join(tmpdir(), 'index-cost-'));
const results = new Map<string, number[]>();
for (let r = 0; r < Number(values.rounds); r++) {
  for (const drop of INDEXES) {
    const us = await variant(drop, dir);
    const key = drop ? `without ${drop}` : 'every index';
    results.set(key, [...(results.get(key) ?? []), us]);
  }
}
rmSync(dir, { recursive: true, force: true });
for (const [k, v] of results)
  console.log(`${k.padEnd(48)} ${v.map((x) => x.toFixed(0)).join(', ')} µs CPU per lifecycle`);
