import type { Dispatcher } from 'undici';
import type { ErrorBody } from '../api/errors.js';
import { ApiError, JitError } from '../cli/errors.js';
import { safe } from '../cli/output.js';

/**
 * The HTTP side of the broker client: which failures are retried and how long to wait, answers
 * read within a size bound, Retry-After, and the broker's JSON errors as ApiError.
 */

/** The longest backoff step between attempts. */
export const MAX_BACKOFF_MS = 5_000;
/** A Retry-After longer than this is not waited out: the call fails at once and says when. */
export const MAX_RETRY_AFTER_MS = 30_000;
/** Answers larger than this are not read: no API v1 answer comes near it. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** Connection failures after which a request surely did not reach the broker. */
export const NOT_SENT = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
/** Failures after which the broker may or may not have seen the request. */
export const MAYBE_SENT = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);
export const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (NOT_SENT.has(code) || MAYBE_SENT.has(code))) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The delay before attempt `attempt + 1`: a random point in [0, min(cap, base·2^(attempt-1))]. */
export function backoffDelay(attempt: number, baseMs: number, random: () => number): number {
  const step = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  return random() * step;
}

export function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export async function readBody(res: Dispatcher.ResponseData, server: string): Promise<string> {
  const length = Number(firstHeader(res.headers['content-length']) ?? 0);
  if (length > MAX_BODY_BYTES) {
    await res.body.dump();
    throw new JitError(`the broker at ${server} sent an answer of ${length} bytes; refusing it`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += (chunk as Buffer).length;
    if (total > MAX_BODY_BYTES) {
      res.body.destroy();
      throw new JitError(`the broker at ${server} sent an answer over ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3), in ms. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number,
): number | undefined {
  const v = firstHeader(value)?.trim();
  if (!v) return undefined;
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  // An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms): a weekday, a month
  // name and a time of day. Date.parse alone would take "1.5" or "-5" for dates.
  if (!/^[A-Za-z]{3}/.test(v) || !/\d{2}:\d{2}:\d{2}/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The broker's `{"error": …}` as an ApiError. Its message and hint may quote what a person typed
 * (a role name, an id), so control characters are made visible here, once, for every command.
 */
export function errorFromBody(status: number, text: string, server: string): ApiError {
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>;
    if (body.error && typeof body.error.message === 'string') {
      const hint = typeof body.error.hint === 'string' ? safe(body.error.hint) : undefined;
      return new ApiError(
        status,
        typeof body.error.code === 'string' ? body.error.code : 'error',
        safe(body.error.message),
        hint,
      );
    }
    // The token endpoint answers in RFC 6749 §5.2's shape: {"error": "invalid_grant", "error_description": "…"}.
    const oauth = body as { error?: unknown; error_description?: unknown };
    if (typeof oauth.error === 'string') {
      const description =
        typeof oauth.error_description === 'string' ? oauth.error_description : oauth.error;
      return new ApiError(status, oauth.error, safe(description));
    }
  } catch {
    // not JSON: a proxy or something that is not a jitctl broker
  }
  return new ApiError(status, 'http_error', `the broker at ${server} answered HTTP ${status}`);
}
