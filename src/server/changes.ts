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

export type WaitOutcome = 'changed' | 'timeout' | 'closed' | 'aborted';

export class ChangeHub {
  readonly #waiters = new Map<string, Set<(o: WaitOutcome) => void>>();
  #closed = false;
  #count = 0;

  /** Long polls waiting right now (a metrics gauge). */
  get waiting(): number {
    return this.#count;
  }

  publish(id: string): void {
    const set = this.#waiters.get(id);
    if (!set) return;
    this.#waiters.delete(id);
    for (const wake of set) wake('changed');
  }

  /** Resolves on the next change of `id`, after `ms`, on close, or when `signal` aborts. */
  wait(id: string, ms: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (this.#closed) return Promise.resolve('closed');
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      let set = this.#waiters.get(id);
      if (!set) {
        set = new Set();
        this.#waiters.set(id, set);
      }
      this.#count++;
      const done = (outcome: WaitOutcome) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const current = this.#waiters.get(id);
        if (current?.delete(done) && current.size === 0) this.#waiters.delete(id);
        this.#count--;
        resolve(outcome);
      };
      const onAbort = () => done('aborted');
      const timer = setTimeout(() => done('timeout'), Math.max(0, ms));
      signal?.addEventListener('abort', onAbort, { once: true });
      set.add(done);
    });
  }

  /** Answers every waiter now (graceful shutdown must not hold connections for a minute). */
  close(): void {
    this.#closed = true;
    const all = [...this.#waiters.values()];
    this.#waiters.clear();
    for (const set of all) for (const wake of set) wake('closed');
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
 * them to `hub`. Reconnects with backoff when the connection drops; while it is down, long polls
 * still wake on this replica's own changes and at the end of their wait.
 */
export async function listenForChanges(
  url: string,
  hub: ChangeHub,
  logger: Logger,
): Promise<ChangeListener> {
  const { default: pg } = await import('pg');
  let client: InstanceType<typeof pg.Client> | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let backoff = 250;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (msg) => {
      if (msg.channel === CHANGE_CHANNEL && msg.payload) hub.publish(msg.payload);
    });
    c.on('error', (err) => {
      logger.warn({ err: err.message }, 'change listener lost its PostgreSQL connection');
      schedule();
    });
    c.on('end', () => schedule());
    await c.connect();
    await c.query(`LISTEN ${CHANGE_CHANNEL}`);
    client = c;
    backoff = 250;
  };

  const schedule = () => {
    if (closed || retry) return;
    const old = client;
    client = undefined;
    old?.removeAllListeners('end');
    void old?.end().catch(() => {});
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch((err: Error) => {
        logger.warn({ err: err.message }, 'change listener cannot reconnect; retrying');
        schedule();
      });
    }, backoff);
    retry.unref();
    backoff = Math.min(backoff * 2, 10_000);
  };

  await connect();
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
