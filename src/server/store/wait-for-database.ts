import { setTimeout as delay } from 'node:timers/promises';
import { isDatabaseUnreachable } from './database.js';

/**
 * Start-up while the database is down: a replica set restarted during a PostgreSQL outage (or
 * started before its database, as orchestrators do) must come up on its own when the database
 * does, not exit and wait for someone. Only "cannot reach it" is waited for; a wrong password or
 * a missing database fails at once, since waiting would not fix them.
 */

/** Shutdown was asked for (SIGTERM, SIGINT) before the database could be reached. */
export class StartAborted extends Error {
  override name = 'StartAborted';
}

export interface WaitOptions {
  signal?: AbortSignal | undefined;
  /** Called before each wait, with what failed and how long until the next attempt. */
  onWait(err: Error, retryInMs: number, attempt: number): void;
  /** Milliseconds before attempt `n + 1` (default: n seconds, at most 5). */
  delayMs?: (attempt: number) => number;
}

/** Runs `fn` until it no longer fails for want of a database, or `signal` aborts. */
export async function whenDatabaseReachable<T>(
  fn: () => Promise<T>,
  opts: WaitOptions,
): Promise<T> {
  const { signal } = opts;
  const aborted = new Promise<never>((_, reject) => {
    const stop = () => reject(new StartAborted('stopped while waiting for the database'));
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
  });
  aborted.catch(() => {});
  for (let attempt = 1; ; attempt++) {
    try {
      // An attempt can take a while (a connect timeout); shutdown does not wait for it.
      return await Promise.race([fn(), aborted]);
    } catch (err) {
      if (err instanceof StartAborted || !isDatabaseUnreachable(err)) throw err;
      const wait = opts.delayMs?.(attempt) ?? Math.min(attempt, 5) * 1000;
      opts.onWait(err as Error, wait, attempt);
      try {
        await delay(wait, undefined, signal ? { signal } : undefined);
      } catch {
        throw new StartAborted('stopped while waiting for the database');
      }
    }
  }
}
