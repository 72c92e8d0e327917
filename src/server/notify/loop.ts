/**
 * The machinery a delivery worker runs on, shared by the notification worker (worker.ts) and the
 * audit sinks (src/server/audit/sinks/worker.ts): a loop that ticks now and then and at once when
 * kicked, jobs that run one per target at a time with a bounded wait at shutdown, and the retry
 * delay (exponential backoff with jitter, stretched by a receiver's Retry-After).
 */

/** Retry-After is honoured up to an hour; a receiver cannot park a delivery for longer. */
export const RETRY_AFTER_CAP_MS = 3_600_000;

/**
 * The delay before the next attempt after `attempts` failures: backoff·2^(attempts−1) capped at
 * `maxBackoffMs`, with jitter in its upper half, and at least what Retry-After asked.
 */
export function retryDelay(
  attempts: number,
  t: { backoffMs: number; maxBackoffMs: number },
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(t.maxBackoffMs, t.backoffMs * 2 ** Math.min(Math.max(attempts, 1) - 1, 30));
  let delay = Math.round(exp * (0.5 + random() / 2));
  if (retryAfterMs !== undefined)
    delay = Math.max(delay, Math.min(retryAfterMs, RETRY_AFTER_CAP_MS));
  return delay;
}

/**
 * Ticks every `intervalMs`, and at once when kicked. Never two ticks at once: a kick during a
 * tick makes one more right after it. A tick's errors are the tick's business (it must catch).
 */
export class Pump {
  readonly #tick: () => Promise<void>;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(tick: () => Promise<void>, intervalMs: number) {
    this.#tick = tick;
    this.#intervalMs = intervalMs;
  }

  get closed(): boolean {
    return this.#closed;
  }

  start(): void {
    this.#schedule(0);
  }

  /** Look now. Returns at once and never throws. */
  kick(): void {
    if (this.#closed) return;
    if (this.#ticking) this.#again = true;
    else this.#schedule(0);
  }

  /** The next tick in `ms` at the latest (a retry falling due before the next interval). */
  wakeIn(ms: number): void {
    if (this.#closed || this.#ticking) return;
    this.#schedule(Math.max(0, Math.min(ms, this.#intervalMs)));
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#ticking ??= this.#tick().finally(() => {
        this.#ticking = undefined;
        const again = this.#again;
        this.#again = false;
        this.#schedule(again ? 0 : this.#intervalMs);
      });
    }, ms);
    this.#timer.unref();
  }

  /** Stops ticking; resolves when the tick in progress, if any, has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#ticking;
  }
}

/**
 * Deliveries in flight, at most one per key (a target, a sink) so each key's items go in order.
 * `signal` aborts when shutdown stops waiting for them.
 */
export class Jobs {
  readonly #jobs = new Set<Promise<void>>();
  readonly #busy = new Set<string>();
  readonly #stop = new AbortController();

  get size(): number {
    return this.#jobs.size;
  }

  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  isBusy(key: string): boolean {
    return this.#busy.has(key);
  }

  /** Keys with a job in flight (at most `max`, for a query's NOT IN). */
  busyKeys(max = 500): string[] {
    return [...this.#busy].slice(0, max);
  }

  /** Runs `fn` for `key` (the caller checked it is free); `then` runs when it has ended. */
  run(key: string, fn: () => Promise<void>, then?: () => void): void {
    this.#busy.add(key);
    const job: Promise<void> = fn()
      .catch(() => {})
      .finally(() => {
        this.#jobs.delete(job);
        this.#busy.delete(key);
        then?.();
      });
    this.#jobs.add(job);
  }

  /** Lets jobs in flight finish for up to `timeoutMs`, then aborts them; resolves when all ended. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.#jobs.size > 0) {
      const timer = setTimeout(() => this.#stop.abort(), timeoutMs);
      await Promise.allSettled([...this.#jobs]);
      clearTimeout(timer);
    }
    this.#stop.abort();
  }
}
