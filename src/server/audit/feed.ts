import type { ChangeHub } from '../changes.js';
import { auditHead } from '../store/audit-stream.js';
import type { Db } from '../store/database.js';

/**
 * Wake-ups for `GET /v1/audit?after=SEQ&wait=30s` (`jitctl audit tail --follow`) and the sinks:
 * "the log has an event after SEQ". One loop per broker reads the head for all waiters together,
 * whenever something may have been appended: a transaction of this process committed
 * (Db.onCommit), another replica's append was announced (`pg_notify` in the append, heard by the
 * LISTEN connection and published on the ChangeHub under {@link AUDIT_APPENDED}), or, as a
 * safety net for writers nobody announces (another process on the same SQLite file, a LISTEN
 * connection that is down), every `pollMs` while anyone waits.
 */

/** The ChangeHub key (and NOTIFY payload) of "the audit log grew"; request ids never look so. */
export const AUDIT_APPENDED = 'audit:appended';

export type FeedOutcome = 'appended' | 'timeout' | 'closed' | 'aborted';

interface Waiter {
  after: number;
  done(outcome: FeedOutcome): void;
}

export class AuditFeed {
  readonly #db: Db;
  readonly #hub: ChangeHub;
  readonly #pollMs: number;
  readonly #waiters = new Set<Waiter>();
  readonly #listeners = new Set<() => void>();
  readonly #stopCommits: () => void;
  #looping = false;
  #closed = false;

  constructor(deps: { db: Db; hub: ChangeHub; pollMs?: number }) {
    this.#db = deps.db;
    this.#hub = deps.hub;
    this.#pollMs = deps.pollMs ?? 1_000;
    this.#stopCommits = deps.db.onCommit(() => this.poke());
  }

  /** Something may have been appended: wake the loop and the listeners. Never throws. */
  poke(): void {
    this.#hub.publish(AUDIT_APPENDED);
    for (const fn of this.#listeners) {
      try {
        fn();
      } catch {}
    }
  }

  /** Calls `fn` whenever something may have been appended (the sinks' kick). */
  listen(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Long polls waiting now. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Resolves once the log holds an event after `after`, after `ms`, on close, or on abort. */
  wait(after: number, ms: number, signal?: AbortSignal): Promise<FeedOutcome> {
    if (this.#closed) return Promise.resolve('closed');
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      const waiter: Waiter = {
        after,
        done: (outcome) => {
          if (!this.#waiters.delete(waiter)) return;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
      };
      const onAbort = () => waiter.done('aborted');
      const timer = setTimeout(() => waiter.done('timeout'), Math.max(0, ms));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      void this.#loop();
    });
  }

  async #loop(): Promise<void> {
    if (this.#looping) return;
    this.#looping = true;
    try {
      while (this.#waiters.size > 0 && !this.#closed) {
        // Listen before reading, so an append between the read and the wait is not missed.
        const stop = new AbortController();
        const woke = this.#hub.wait(AUDIT_APPENDED, this.#pollMs, stop.signal);
        try {
          const head = await auditHead(this.#db.kysely);
          for (const w of [...this.#waiters]) if (head.seq > w.after) w.done('appended');
        } catch {
          // The database is away: the waiters wait on (their own timers end them).
        }
        if (this.#waiters.size === 0) stop.abort();
        if ((await woke) === 'closed') this.close();
      }
    } finally {
      this.#looping = false;
    }
  }

  /** Answers every waiter now (shutdown must not hold long polls). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopCommits();
    for (const w of [...this.#waiters]) w.done('closed');
  }
}
