import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { verifySqliteRange } from './verify-range.js';

/**
 * A worker thread of `jitctl audit verify --db sqlite:…` (src/server/audit/log.ts): walks one range
 * of the log on its own read-only connection and posts the RangeResult. Built as its own entry,
 * dist/audit-verify-worker.js (tsup.config.ts).
 */
const { path, after, upTo } = workerData as { path: string; after: number; upTo: number };
const db = new Database(path, { readonly: true, fileMustExist: true });
try {
  db.pragma('busy_timeout = 5000');
  parentPort!.postMessage(verifySqliteRange(db, after, upTo));
} finally {
  db.close();
}
