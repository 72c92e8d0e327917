import type { AuditPage } from '../api/schemas.js';
import type { Clock } from '../cli/context.js';
import { UnreachableError } from '../cli/errors.js';
import { type BrokerClient, backoffDelay } from './broker-client.js';

/**
 * Reading the audit log from a cursor (`jitctl audit tail`): pages of events after the last one
 * handed on, each event once and in order; at the end of the log, with `follow`, a long poll
 * (`GET /v1/audit?after=SEQ&wait=30s`) that the broker answers as soon as something is appended.
 * Like waiting for a decision (await-approval.ts), each poll is one attempt and this loop does its
 * own retrying, so following outlives a broker restart or an outage of any length, resuming from
 * the last event handed on. It never prints.
 */

export interface FollowOptions {
  clock: Clock;
  /** Start after this event (0: from the first). */
  after: number;
  /** At the end of the log, wait for more instead of returning. */
  follow: boolean;
  /** Events per page (at most 1000). */
  pageSize?: number;
  /** Ask for each request's role and requester (OCSF output). */
  withRequests?: boolean;
  /** Ctrl-C: sleeps between attempts end with InterruptedError. */
  signal?: AbortSignal | undefined;
  /** The longest single poll (default 30 s; the broker caps it at 60 s). */
  pollMs?: number;
  /** First backoff step after a failed poll (default 250 ms, doubling up to 5 s). */
  backoffMs?: number;
  random?: () => number;
  /** Each page's new events, in order; the next page is asked for once this resolves. */
  onEvents(page: AuditPage): Promise<void> | void;
  /** The broker stopped answering (the first failure of an outage). */
  onUnreachable?(reason: string): void;
  /** The broker answers again after an outage. */
  onReachable?(): void;
}

/** Resolves at the end of the log (without `follow`) with the last event's seq handed on. */
export async function followAudit(client: BrokerClient, opts: FollowOptions): Promise<number> {
  let after = opts.after;
  let failures = 0;
  let atEnd = false;
  const limit = opts.pageSize ?? 1000;
  for (;;) {
    try {
      const page = await client.pollAudit({
        after,
        limit,
        // Wait only at the end of the log, and never right after an outage (a wait would hide
        // for up to 30 s that the broker is back).
        waitMs: opts.follow && atEnd ? (opts.pollMs ?? 30_000) : 0,
        withRequests: opts.withRequests ?? false,
        // Without --follow an outage is an error after the client's usual retries.
        ...(opts.follow ? { attempts: 1 } : {}),
      });
      if (failures > 0) opts.onReachable?.();
      failures = 0;
      // Never hand on an event twice, whatever the broker sends.
      const items = page.items.filter((e) => e.seq > after);
      if (items.length > 0) {
        await opts.onEvents({ ...page, items });
        after = items[items.length - 1]!.seq;
      }
      atEnd = page.next_after === null;
      if (atEnd && !opts.follow) return after;
    } catch (err) {
      if (!(err instanceof UnreachableError) || !opts.follow) throw err;
      failures++;
      atEnd = false;
      if (failures === 1) opts.onUnreachable?.(err.message);
      await opts.clock.sleep(
        backoffDelay(failures, opts.backoffMs ?? 250, opts.random ?? Math.random),
        opts.signal,
      );
    }
  }
}
