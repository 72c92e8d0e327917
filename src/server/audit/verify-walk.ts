import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SqliteHandle } from '../store/database.js';
import { type RangeResult, verifySqliteRange } from './verify-range.js';

/**
 * The log's events with seq ≤ `headSeq`, as ranges walked on worker threads, each on its own
 * connection (src/server/audit/verify-worker.ts), or as one range on this thread: for a short
 * log, an in-memory database, or where the worker's file is not there (running from the sources
 * rather than the bundle). A worker that fails leaves its range to this thread. The first range
 * starts below any seq, so a row slipped in with seq ≤ 0 is reported as by one walk. The caller
 * checks the seams in order (src/server/audit/log.ts).
 */
export type LogSource =
  | { kind: 'sqlite'; handle: SqliteHandle }
  | { kind: 'postgres'; url: string };

/** What a worker is given: where the log is and which range to walk. */
export type RangeTask = { after: number; upTo: number } & (
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string }
);

/** Fewer events than this per thread are not worth a thread's start-up (about 50 ms). */
const MIN_EVENTS_PER_THREAD = 20_000;

export async function walkRanges(
  source: LogSource,
  headSeq: number,
  threads: number,
): Promise<{ ranges: RangeResult[]; workers: number }> {
  const n = Math.max(1, Math.min(threads, Math.floor(headSeq / MIN_EVENTS_PER_THREAD)));
  const worker = new URL('./audit-verify-worker.js', import.meta.url);
  const local = (after: number, upTo: number) => walkHere(source, after, upTo);
  if (
    n === 1 ||
    (source.kind === 'sqlite' && source.handle.memory) ||
    !existsSync(fileURLToPath(worker))
  ) {
    return { ranges: [await local(Number.MIN_SAFE_INTEGER, headSeq)], workers: 0 };
  }
  const { Worker } = await import('node:worker_threads');
  const bounds = Array.from({ length: n }, (_, i) => [
    i === 0 ? Number.MIN_SAFE_INTEGER : Math.floor((headSeq * i) / n),
    Math.floor((headSeq * (i + 1)) / n),
  ]) as Array<[number, number]>;
  let workers = 0;
  const ranges = await Promise.all(
    bounds.map(
      ([after, upTo]) =>
        new Promise<RangeResult>((resolve, reject) => {
          let settled = false;
          const settle = (result: () => Promise<RangeResult> | RangeResult) => {
            if (settled) return;
            settled = true;
            Promise.resolve().then(result).then(resolve, reject);
          };
          const task: RangeTask =
            source.kind === 'sqlite'
              ? { kind: 'sqlite', path: source.handle.name, after, upTo }
              : { kind: 'postgres', url: source.url, after, upTo };
          const w = new Worker(worker, { workerData: task });
          w.once('message', (r: RangeResult) => {
            if (!settled) workers++;
            settle(() => r);
          });
          w.once('error', () => settle(() => local(after, upTo)));
          w.once('exit', () => settle(() => local(after, upTo)));
        }),
    ),
  );
  return { ranges, workers };
}

/** One range on this thread (on its own PostgreSQL connection, closed after). */
async function walkHere(source: LogSource, after: number, upTo: number): Promise<RangeResult> {
  if (source.kind === 'sqlite') return verifySqliteRange(source.handle, after, upTo);
  const [{ default: pg }, { verifyPostgresRange }] = await Promise.all([
    import('pg'),
    import('./verify-range-pg.js'),
  ]);
  const client = new pg.Client({ connectionString: source.url, connectionTimeoutMillis: 5_000 });
  // A connection that dies fails the query in flight; without a listener it would end the process.
  client.on('error', () => {});
  await client.connect();
  try {
    return await verifyPostgresRange(client, after, upTo);
  } finally {
    await client.end().catch(() => {});
  }
}
