import { DurationError, parseDuration } from '../api/duration.js';
import { ErrorCode } from '../api/errors.js';

/**
 * An answer the broker gives on purpose: an HTTP status, an API error code from src/api/errors.ts
 * and a message that says what was wrong and how to fix it. Anything else thrown out of a route is
 * either a database failure (503, nothing changed) or a bug (500, logged with the request id).
 */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toBody(): { error: { code: string; message: string; hint?: string } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.hint !== undefined ? { hint: this.hint } : {}),
      },
    };
  }
}

export const badRequest = (message: string, hint?: string) =>
  new HttpError(400, ErrorCode.BadRequest, message, hint);

export const forbidden = (message: string, hint?: string) =>
  new HttpError(403, ErrorCode.Forbidden, message, hint);

export const notFound = (message: string, hint?: string) =>
  new HttpError(404, ErrorCode.NotFound, message, hint);

export const invalidState = (message: string, hint?: string) =>
  new HttpError(409, ErrorCode.InvalidState, message, hint);

/** A duration given as `name` (body field or query parameter), or a 400 that names it. */
export function durationOf(name: string, text: string, hint: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    throw new HttpError(400, ErrorCode.InvalidDuration, `\`${name}\` ${err.message}`, hint);
  }
}

export const unavailable = (message: string, hint?: string) =>
  new HttpError(503, ErrorCode.Unavailable, message, hint, { 'retry-after': '1' });

/**
 * 429 `rate_limited` in the API's error shape with `Retry-After` (RFC 9110 §10.2.3) in whole
 * seconds, at least 1: when the caller may try again. For every limit that refuses for a while
 * (rate limits, failed sign-ins, caps); the message says which limit and the hint what to do.
 */
export function rateLimited(retryAfterMs: number, message: string, hint?: string): HttpError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new HttpError(429, ErrorCode.RateLimited, message, hint, {
    'retry-after': String(seconds),
  });
}

/**
 * The audit log refused an append. The change it belonged to was rolled back (fail closed), so the
 * caller may retry once the operator has fixed the database.
 */
export class AuditAppendError extends Error {
  override name = 'AuditAppendError';
}
