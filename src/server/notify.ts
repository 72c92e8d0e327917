import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RequestEventType } from '../api/schemas.js';
import { VERSION } from '../api/version.js';
import { safe } from '../cli/output.js';
import { lifecycleText } from './notify-lifecycle.js';
import type { NotifyTarget } from './policy/types.js';

/**
 * Webhook notifications of the policy's `notify` list: one JSON POST per event and target, with a
 * Slack-compatible `text` so a Slack (or Mattermost, or Rocket.Chat) incoming webhook shows a
 * readable line without an adapter. Best effort by design: the audit log is the record, so a
 * receiver that is down costs a warning in the log, never a failed or slowed request.
 */

/** What receivers get (plus `event_id` and `text`). Never a token: there is no field for one. */
export interface NotifyEvent {
  type: RequestEventType;
  request_id: string;
  role: string;
  /** The requester's display name (their subject when the identity provider gives no name). */
  requester: string;
  /** The duration asked for, as on the wire (`15m`). */
  duration: string;
  reason: string | null;
  ticket?: string | null;
  /** Who approved, denied or revoked; null for created, cancelled, expired and auto-approval. */
  reviewer: string | null;
  /** For `review.recorded`: the reviewer's decision. */
  decision?: 'approve' | 'deny' | null;
  comment: string | null;
  /** RFC 3339 UTC. */
  at: string;
  /** `high` for break-glass use, an overdue break-glass review and a flagged one. */
  priority?: 'high' | 'normal';
}

export interface Notifier {
  /** Queues delivery and returns at once; never throws. */
  notify(event: NotifyEvent): void;
  /** Stops taking events and waits for deliveries in flight, at most `closeTimeoutMs`. */
  close(): Promise<void>;
}

export interface NotifyLogger {
  warn(obj: object, msg: string): void;
}

export interface NotifierOptions {
  /** Per attempt. Default 5 s: long enough for a slow receiver, short enough to free sockets. */
  timeoutMs?: number;
  /** Retries after the first attempt, for 5xx, 408, 429 and connection errors. Default 2. */
  retries?: number;
  /** First backoff; doubles per retry, with jitter. Default 1 s. */
  backoffMs?: number;
  /** How long close() waits before abandoning deliveries. Default 10 s. */
  closeTimeoutMs?: number;
  /** Deliveries in flight beyond this are dropped (with a warning) instead of piling up. */
  maxInFlight?: number;
  fetch?: typeof globalThis.fetch;
}

const TEXT_LIMIT = 300;
const RETRY_AFTER_CAP_MS = 30_000;

export function createNotifier(
  targets: readonly NotifyTarget[],
  logger: NotifyLogger,
  options: NotifierOptions = {},
): Notifier {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const retries = options.retries ?? 2;
  const backoffMs = options.backoffMs ?? 1_000;
  const closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
  const maxInFlight = options.maxInFlight ?? 1_000;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const stop = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let closed = false;

  // A logger that throws must not turn a notification into a failed request either.
  const warn = (obj: object, msg: string) => {
    try {
      logger.warn(obj, msg);
    } catch {}
  };

  async function deliver(target: NotifyTarget, body: string, event: NotifyEvent): Promise<void> {
    // The URL's path is often the receiver's secret (Slack webhooks): log the origin only.
    const where = {
      webhook: origin(target.webhook),
      event: event.type,
      request_id: event.request_id,
    };
    for (let attempt = 1; ; attempt++) {
      let retryable: boolean;
      let detail: Record<string, unknown>;
      let waitMs = backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
      try {
        const res = await fetchImpl(target.webhook, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': `jitctl/${VERSION}` },
          body,
          // A redirect could lead to an address the policy's author never approved.
          redirect: 'manual',
          signal: AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]),
        });
        await res.body?.cancel().catch(() => {});
        if (res.status >= 200 && res.status < 300) return;
        retryable = res.status >= 500 || res.status === 408 || res.status === 429;
        detail = { status: res.status };
        const after = retryAfterMs(res.headers.get('retry-after'));
        if (after !== undefined) waitMs = Math.max(waitMs, Math.min(after, RETRY_AFTER_CAP_MS));
      } catch (err) {
        if (stop.signal.aborted) {
          warn({ ...where, attempts: attempt }, 'webhook delivery abandoned at shutdown');
          return;
        }
        retryable = true;
        detail = { err: failure(err, timeoutMs) };
      }
      if (!retryable || attempt > retries) {
        warn({ ...where, attempts: attempt, ...detail }, 'webhook delivery failed');
        return;
      }
      try {
        await sleep(waitMs, undefined, { signal: stop.signal });
      } catch {
        warn({ ...where, attempts: attempt, ...detail }, 'webhook delivery abandoned at shutdown');
        return;
      }
    }
  }

  return {
    notify(event) {
      try {
        if (targets.length === 0) return;
        if (closed) {
          warn(
            { event: event.type, request_id: event.request_id },
            'notifier closed; event dropped',
          );
          return;
        }
        const body = JSON.stringify(payload(event));
        for (const target of targets) {
          if (inFlight.size >= maxInFlight) {
            warn(
              { webhook: origin(target.webhook), event: event.type, request_id: event.request_id },
              'too many webhook deliveries in flight; event dropped',
            );
            continue;
          }
          const delivery: Promise<void> = deliver(target, body, event)
            .catch((err: unknown) => warn({ err: String(err) }, 'webhook delivery failed'))
            .finally(() => inFlight.delete(delivery));
          inFlight.add(delivery);
        }
      } catch (err) {
        warn({ err: String(err) }, 'could not queue a notification');
      }
    },
    async close() {
      closed = true;
      if (inFlight.size === 0) return;
      const timer = setTimeout(() => stop.abort(), closeTimeoutMs);
      try {
        await Promise.allSettled([...inFlight]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The JSON body: the event's own fields, picked (never spread), an id and the chat text. */
export function payload(event: NotifyEvent): Record<string, unknown> {
  return {
    event_id: randomUUID(),
    type: event.type,
    request_id: event.request_id,
    role: event.role,
    requester: event.requester,
    duration: event.duration,
    reason: event.reason,
    ticket: event.ticket ?? null,
    reviewer: event.reviewer,
    decision: event.decision ?? null,
    comment: event.comment,
    at: event.at,
    text: eventText(event),
  };
}

/**
 * One line for chat. Slack reads `<…>` as links and mentions (`<!channel>`) and `&` as an
 * entity, so those are escaped (api.slack.com "Escaping text"); control and bidi characters are
 * shown as escapes so a reason cannot rewrite the message around it.
 */
export function eventText(e: NotifyEvent): string {
  const t = (s: string | null | undefined) => {
    const clean = safe(s ?? '');
    const cut = clean.length > TEXT_LIMIT ? `${clean.slice(0, TEXT_LIMIT)}…` : clean;
    return cut.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  };
  const who = t(e.requester);
  const role = t(e.role);
  const reviewer = e.reviewer ? t(e.reviewer) : null;
  const note = (s: string | null | undefined) => (s ? `: ${t(s)}` : '');
  const id = ` — ${t(e.request_id)}`;
  switch (e.type) {
    case 'request.created': {
      const ticket = e.ticket ? ` [${t(e.ticket)}]` : '';
      return `${who} requests ${role} for ${t(e.duration)}${note(e.reason)}${ticket}${id}`;
    }
    case 'review.recorded': {
      const verb = e.decision === 'deny' ? 'denies' : 'approves';
      return `${reviewer ?? 'a reviewer'} ${verb} ${who}'s request for ${role}${note(e.comment)}${id}`;
    }
    case 'request.approved':
      return reviewer
        ? `${reviewer} approved ${who}'s request for ${role} (${t(e.duration)})${note(e.comment)}${id}`
        : `${who}'s request for ${role} (${t(e.duration)}) was approved automatically${id}`;
    case 'request.denied':
      return `${reviewer ?? 'a reviewer'} denied ${who}'s request for ${role}${note(e.comment)}${id}`;
    case 'request.cancelled':
      return `${who} cancelled their request for ${role}${id}`;
    case 'request.expired':
      return `${who}'s request for ${role} expired${id}`;
    case 'request.revoked':
      return `${reviewer ?? 'someone'} revoked ${who}'s access to ${role}${note(e.comment)}${id}`;
    default:
      return (
        lifecycleText(e.type, {
          who,
          role,
          reviewer,
          id,
          note: note(e.comment),
          reason: note(e.reason),
        }) ?? `${t(String((e as { type: unknown }).type))}: ${who}, ${role}${id}`
      );
  }
}

function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

function failure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string; message?: string } } | null;
  if (e?.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
  return e?.cause?.code ?? e?.cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/** RFC 9110 §10.2.3: seconds or an HTTP date. */
function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
