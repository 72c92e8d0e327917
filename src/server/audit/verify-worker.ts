import { parentPort, workerData } from 'node:worker_threads';
import type { RangeResult } from './verify-range.js';
import type { RangeTask } from './verify-walk.js';

/**
 * A worker thread of `jitctl audit verify --db …` (src/server/audit/verify-walk.ts): walks one
 * range of the log on its own connection (SQLite: read-only; PostgreSQL: a read-only transaction)
 * and posts the RangeResult. Built as its own entry, dist/audit-verify-worker.js (tsup.config.ts).
 */
const task = workerData as RangeTask;
parentPort!.postMessage(await walkRange(task));

async function walkRange(t: RangeTask): Promise<RangeResult> {
  if (t.kind === 'sqlite') {
    const [{ default: Database }, { verifySqliteRange }] = await Promise.all([
      import('better-sqlite3'),
      import('./verify-range.js'),
    ]);
    const db = new Database(t.path, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      return verifySqliteRange(db, t.after, t.upTo);
    } finally {
      db.close();
    }
  }
  const [{ default: pg }, { verifyPostgresRange }] = await Promise.all([
    import('pg'),
    import('./verify-range-pg.js'),
  ]);
  const client = new pg.Client({ connectionString: t.url, connectionTimeoutMillis: 5_000 });
  // A connection that dies fails the query in flight (and so this range, which the main thread
  // then walks itself); without a listener it would end the worker with an unhandled 'error'.
  client.on('error', () => {});
  await client.connect();
  try {
    return await verifyPostgresRange(client, t.after, t.upTo);
  } finally {
    await client.end();
  }
}
