import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { ServerClock } from '../clock.js';

/**
 * A counter store for @fastify/rate-limit with the broker's clock. The plugin's own LocalStore
 * reads `Date.now()`, so tests could not move time past a window; this one has the same fixed
 * window semantics (a window starts at a key's first hit and its count resets when it ends) and
 * the same bound on memory: at most `size` keys, the least recently used dropped first, so
 * requests from a million spoofed addresses cost a bounded map, not the process.
 */

interface Entry {
  count: number;
  start: number;
}

type Callback = (err: Error | null, res: { current: number; ttl: number }) => void;

export function clockedStore(clock: ServerClock, size = 20_000): FastifyRateLimitStoreCtor {
  class ClockedStore implements FastifyRateLimitStore {
    readonly #entries = new Map<string, Entry>();

    #live(key: string, windowMs: number, now: number): Entry | undefined {
      const e = this.#entries.get(key);
      if (!e) return undefined;
      this.#entries.delete(key);
      if (e.start + windowMs <= now) return undefined;
      this.#entries.set(key, e);
      return e;
    }

    incr(key: string, callback: Callback, timeWindow: number): void {
      const now = clock.now();
      let e = this.#live(key, timeWindow, now);
      if (e) e.count++;
      else {
        e = { count: 1, start: now };
        this.#entries.set(key, e);
        while (this.#entries.size > size) {
          const oldest = this.#entries.keys().next().value;
          if (oldest === undefined) break;
          this.#entries.delete(oldest);
        }
      }
      callback(null, { current: e.count, ttl: e.start + timeWindow - now });
    }

    /** The count without counting (the plugin's `{ increment: false }`). */
    read(key: string, callback: Callback, timeWindow: number): void {
      const now = clock.now();
      const e = this.#live(key, timeWindow, now);
      callback(
        null,
        e ? { current: e.count, ttl: e.start + timeWindow - now } : { current: 0, ttl: 0 },
      );
    }

    child(): FastifyRateLimitStore {
      return new ClockedStore();
    }
  }
  return ClockedStore as unknown as FastifyRateLimitStoreCtor;
}
