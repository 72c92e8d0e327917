import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from './store/schema.js';

/**
 * Wake-ups for long polls. A change to a request is published after its transaction commits; every
 * `GET /v1/requests/:id?wait=…` waiting on that id re-reads the request and answers if its ETag
 * moved. Within one process this is a map of callbacks; across PostgreSQL replicas the committing
 * transaction also sends `NOTIFY` (delivered only on commit), and each replica's listener
 * publishes what it hears locally. A spurious or duplicate wake-up only costs a re-read.
 */
export const CHANGE_CHANNEL = 'jitctl_request_changes';
/**
 * Published (and sent to replicas) after each revocation, beside the request's own id: what
 * `GET /v1/revocations?wait=…` waits on. No request id looks like it (`req_…`).
 */
export const REVOCATIONS_TOPIC = 'revocations';

export type WaitOutcome = 'changed' | 'timeout' | 'closed' | 'aborted';

/**
 * A long poll's interest in one key, taken BEFORE it reads what it waits on: a change published
 * between that read and the wait is kept, so `next` answers at once instead of sleeping through it
 * (the lost wake-up). It stays registered across `next` calls until `close`.
 */
export interface Watch {
  /** Resolves at once if `key` changed since the watch began (or since the last `next`), else on
   * its next change, after `ms`, on close, or when `signal` aborts. */
  next(ms: number, signal?: AbortSignal): Promise<WaitOutcome>;
  close(): void;
}

interface Watcher {
  /** What happened while nobody was waiting (`changed` or `closed`), to answer the next `next`. */
  missed: WaitOutcome | null;
  /** Set while a `next` is waiting. */
  wake: ((o: WaitOutcome) => void) | null;
}

export class ChangeHub {
  readonly #watchers = new Map<string, Set<Watcher>>();
  #closed = false;
  #count = 0;

  /** Long polls waiting right now (a metrics gauge). */
  get waiting(): number {
    return this.#count;
  }

  publish(id: string): void {
    const set = this.#watchers.get(id);
    if (set) for (const w of set) this.#tell(w, 'changed');
  }

  /** Starts watching `id`; see {@link Watch}. */
  watch(id: string): Watch {
    const watcher: Watcher = { missed: this.#closed ? 'closed' : null, wake: null };
    let set = this.#watchers.get(id);
    if (!set) {
      set = new Set();
      this.#watchers.set(id, set);
    }
    set.add(watcher);
    this.#count++;
    let open = true;
    return {
      next: (ms, signal) => this.#next(watcher, ms, signal),
      close: () => {
        if (!open) return;
        open = false;
        watcher.wake?.('aborted');
        this.#count--;
        const current = this.#watchers.get(id);
        if (current?.delete(watcher) && current.size === 0) this.#watchers.delete(id);
      },
    };
  }

  /** Resolves on the next change of `id`, after `ms`, on close, or when `signal` aborts. */
  async wait(id: string, ms: number, signal?: AbortSignal): Promise<WaitOutcome> {
    const watch = this.watch(id);
    try {
      return await watch.next(ms, signal);
    } finally {
      watch.close();
    }
  }

  /**
   * Wakes every waiter to re-read its request. For when changes may have gone unheard (the
   * LISTEN connection was down): each waiter whose request did not change simply waits again.
   */
  wakeAll(): void {
    for (const set of this.#watchers.values()) for (const w of set) this.#tell(w, 'changed');
  }

  /** Answers every waiter now (graceful shutdown must not hold connections for a minute). */
  close(): void {
    this.#closed = true;
    for (const set of this.#watchers.values()) for (const w of set) this.#tell(w, 'closed');
  }

  #tell(w: Watcher, outcome: WaitOutcome): void {
    if (w.wake) w.wake(outcome);
    else if (w.missed !== 'closed') w.missed = outcome;
  }

  #next(w: Watcher, ms: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (w.missed !== null) {
      const missed = w.missed;
      if (missed !== 'closed') w.missed = null;
      return Promise.resolve(missed);
    }
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      const done = (outcome: WaitOutcome) => {
        if (w.wake !== done) return;
        w.wake = null;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = () => done('aborted');
      const timer = setTimeout(() => done('timeout'), Math.max(0, ms));
      signal?.addEventListener('abort', onAbort, { once: true });
      w.wake = done;
    });
  }
}

/** Inside a PostgreSQL transaction: tell other replicas that `id` changed once this commits. */
export async function notifyReplicas(tx: Kysely<Database>, id: string): Promise<void> {
  await sql`select pg_notify(${CHANGE_CHANNEL}, ${id})`.execute(tx);
}

export interface ChangeListener {
  close(): Promise<void>;
}

/**
 * A dedicated PostgreSQL connection that LISTENs for changes from every replica and publishes
 * them to `hub`. It never ends the process and never stops trying: when the connection drops
 * (terminated, a restart, a failover) or cannot be opened, it reconnects with backoff (up to 5 s)
 * and, once listening again, wakes every waiter to re-read, since notifications sent meanwhile
 * were lost. While it is down, long polls still wake on this replica's own changes and at the end
 * of their wait.
 */
export async function listenForChanges(
  url: string,
  hub: ChangeHub,
  logger: Logger,
): Promise<ChangeListener> {
  const { default: pg } = await import('pg');
  type Client = InstanceType<typeof pg.Client>;
  /** The connection in use or being opened; any other one's events are stale. */
  let client: Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let backoff = 250;
  let lost = false;

  const schedule = () => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch((err: Error) => {
        logger.warn({ err: err.message }, 'change listener cannot reconnect; retrying');
        schedule();
      });
    }, backoff);
    retry.unref();
    backoff = Math.min(backoff * 2, 5_000);
  };

  const drop = (c: Client, why: string) => {
    if (c !== client) return;
    client = undefined;
    c.removeAllListeners('notification');
    void c.end().catch(() => {});
    if (closed) return;
    if (!lost) logger.warn({ err: why }, 'change listener lost its PostgreSQL connection');
    lost = true;
    schedule();
  };

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    client = c;
    // Listeners before connecting: an 'error' event without one would end the process.
    c.on('error', (err) => drop(c, err.message));
    c.on('end', () => drop(c, 'the connection ended'));
    c.on('notification', (msg) => {
      if (msg.channel === CHANGE_CHANNEL && msg.payload) hub.publish(msg.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      if (client === c) client = undefined;
      void c.end().catch(() => {});
      throw err;
    }
    if (client !== c) throw new Error('the connection ended while it was starting to listen');
    if (closed) {
      client = undefined;
      await c.end().catch(() => {});
      return;
    }
    backoff = 250;
    if (lost) {
      lost = false;
      logger.info('change listener reconnected');
      hub.wakeAll();
    }
  };

  try {
    await connect();
  } catch (err) {
    // The database went away right after start-up: keep trying in the background.
    lost = true;
    logger.warn({ err: (err as Error).message }, 'change listener cannot connect; retrying');
    schedule();
  }
  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = undefined;
      c?.removeAllListeners('end');
      await c?.end().catch(() => {});
    },
  };
}
