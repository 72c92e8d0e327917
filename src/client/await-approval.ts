import type { AccessRequest } from '../api/schemas.js';
import type { Clock } from '../cli/context.js';
import { UnreachableError } from '../cli/errors.js';
import { type BrokerClient, backoffDelay } from './broker-client.js';

/**
 * Waiting for a decision on a request: the broker's long poll (`GET /v1/requests/:id?wait=30s`
 * with `If-None-Match`), which answers within moments of a review, a cancel or a lapse. Each poll
 * is one attempt; this loop does its own retrying so that a wait outlives a broker restart or a
 * network outage of any length (up to the caller's deadline), telling the caller once when the
 * broker goes away and once when it is back. It never prints.
 */

export interface WaitHooks {
  /** Each version of the request the broker reports (the first one included). */
  onChange?(request: AccessRequest): void;
  /** The broker stopped answering (the first failure of an outage). */
  onUnreachable?(reason: string): void;
  /** The broker answers again after an outage. */
  onReachable?(): void;
}

export interface WaitOptions extends WaitHooks {
  clock: Clock;
  /** Stop waiting at this time (ms since epoch); undefined: until a decision. */
  deadline?: number | undefined;
  /** Ctrl-C: sleeps between attempts end with InterruptedError. */
  signal?: AbortSignal | undefined;
  /** The longest single poll (default 30 s; the broker caps it at 60 s). */
  pollMs?: number;
  /** First backoff step after a failed poll (default 250 ms, doubling up to 5 s). */
  backoffMs?: number;
  random?: () => number;
  /** Whether the request is where the caller stops waiting (default: no longer pending). */
  settled?: (request: AccessRequest) => boolean;
}

export type WaitResult =
  /** No longer pending: approved, denied, cancelled, expired or revoked. */
  | { outcome: 'decided'; request: AccessRequest }
  /** Still pending at the deadline. */
  | { outcome: 'timeout'; request: AccessRequest };

export const DEFAULT_POLL_MS = 30_000;

/**
 * Waits until `request` is no longer pending, or until the deadline. `request` is the version the
 * caller already has (from filing it, or from `getRequest`); the first poll fetches the current
 * version and its ETag without waiting, so a decision that came before the wait is never missed.
 */
export async function waitForDecision(
  client: BrokerClient,
  request: AccessRequest,
  opts: WaitOptions,
): Promise<WaitResult> {
  const { clock } = opts;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  let current = request;
  let etag: string | undefined;
  let failures = 0;
  let first = true;
  const settled = opts.settled ?? ((r: AccessRequest) => r.state !== 'pending');
  opts.onChange?.(current);
  for (;;) {
    if (settled(current)) return { outcome: 'decided', request: current };
    const left = opts.deadline === undefined ? pollMs : opts.deadline - clock.now();
    if (left <= 0 && !first) return { outcome: 'timeout', request: current };
    const waitMs = first ? 0 : Math.min(pollMs, left);
    try {
      const answer = await client.pollRequest(current.id, { waitMs, etag, attempts: 1 });
      if (failures > 0) opts.onReachable?.();
      failures = 0;
      first = false;
      etag = answer.etag;
      // The ETag is the broker's business (opaque, RFC 9110 §8.8.3); what the person sees
      // changes when the request does.
      const changed = JSON.stringify(answer.request) !== JSON.stringify(current);
      current = answer.request;
      if (changed) opts.onChange?.(current);
    } catch (err) {
      if (!(err instanceof UnreachableError)) throw err;
      failures++;
      // After an outage, ask again without waiting: a long poll with the old ETag would be held
      // by the broker until something changes, hiding for up to 30 s that it is back.
      first = true;
      if (failures === 1) opts.onUnreachable?.(err.message);
      const delay = backoffDelay(failures, opts.backoffMs ?? 250, opts.random ?? Math.random);
      // Never sleep past the deadline: a timeout during an outage is still a timeout.
      const until =
        opts.deadline === undefined ? delay : Math.min(delay, opts.deadline - clock.now());
      if (until > 0) await clock.sleep(until, opts.signal);
      if (opts.deadline !== undefined && clock.now() >= opts.deadline) {
        return { outcome: 'timeout', request: current };
      }
    }
  }
}
