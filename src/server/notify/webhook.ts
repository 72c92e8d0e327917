import { Webhook } from 'standardwebhooks';
import type { Secret } from '../../api/secret.js';
import { VERSION } from '../../api/version.js';

/**
 * One webhook POST, signed per Standard Webhooks (standardwebhooks.com): `webhook-id` (the same
 * on every attempt, for deduplication), `webhook-timestamp` (seconds, this attempt) and
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. Redirects are not
 * followed: a redirect could lead to an address the policy's author never approved.
 */

export interface WebhookOutcome {
  ok: boolean;
  retry: boolean;
  /** How long the receiver asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number;
  /** A status code or an error code: never the URL (its path is often a secret). */
  detail: string;
}

export interface WebhookPost {
  url: string;
  body: string;
  id: string;
  secret: Secret | null;
  /** Seconds since the epoch for `webhook-timestamp`. */
  timestamp: number;
  timeoutMs: number;
  signal: AbortSignal;
  fetch: typeof globalThis.fetch;
  /**
   * More headers (the audit sinks' Splunk HEC `Authorization: Splunk <token>`); the Standard
   * Webhooks headers are always sent and cannot be replaced.
   */
  headers?: Record<string, string>;
}

export async function postWebhook(p: WebhookPost): Promise<WebhookOutcome> {
  const headers: Record<string, string> = {
    ...p.headers,
    'content-type': 'application/json',
    'user-agent': `jitctl/${VERSION}`,
    'webhook-id': p.id,
    'webhook-timestamp': String(p.timestamp),
  };
  if (p.secret) {
    headers['webhook-signature'] = new Webhook(p.secret.reveal()).sign(
      p.id,
      new Date(p.timestamp * 1000),
      p.body,
    );
  }
  try {
    const res = await p.fetch(p.url, {
      method: 'POST',
      headers,
      body: p.body,
      redirect: 'manual',
      signal: AbortSignal.any([p.signal, AbortSignal.timeout(p.timeoutMs)]),
    });
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300)
      return { ok: true, retry: false, detail: String(res.status) };
    const retry = res.status >= 500 || res.status === 408 || res.status === 429;
    const after = retryAfterMs(res.headers.get('retry-after'));
    return {
      ok: false,
      retry,
      detail: `http ${res.status}`,
      ...(after !== undefined ? { retryAfterMs: after } : {}),
    };
  } catch (err) {
    return { ok: false, retry: true, detail: failure(err, p.timeoutMs) };
  }
}

function failure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string } } | null;
  if (e?.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
  if (e?.name === 'AbortError') return 'aborted';
  // The cause's code (ECONNREFUSED…); messages may quote the URL, so they are not used.
  return e?.cause?.code ?? e?.name ?? 'error';
}

/** RFC 9110 §10.2.3: seconds or an HTTP date. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
