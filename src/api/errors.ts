/**
 * Error codes the broker puts in `{"error": {"code", "message", "hint"?}}`. The CLI maps them to
 * exit codes (src/cli/errors.ts); scripts may rely on them, so they only ever get added to.
 */
export const ErrorCode = {
  /** 400: the body or a parameter is malformed (wrong type, extra field, not JSON). */
  BadRequest: 'bad_request',
  /** 400: a duration that does not parse. */
  InvalidDuration: 'invalid_duration',
  /** 400: a duration over the role's `max_duration` (the message names the maximum). */
  DurationTooLong: 'duration_too_long',
  /** 400: no such role (the hint lists the roles the caller may request). */
  UnknownRole: 'unknown_role',
  /** 400: the role has `require_reason` and none was given. */
  ReasonRequired: 'reason_required',
  /** 413 */
  PayloadTooLarge: 'payload_too_large',
  /** 415 */
  UnsupportedMediaType: 'unsupported_media_type',
  /** 401: no token, or a token that fails verification. */
  Unauthenticated: 'unauthenticated',
  /** 401 with an RFC 9470 challenge: authenticate again with a stronger or fresher method. */
  InsufficientUserAuthentication: 'insufficient_user_authentication',
  /** 403: policy does not allow this caller to do this. */
  Forbidden: 'forbidden',
  /** 403: the requester tried to review their own request. */
  SelfReview: 'self_review',
  /** 404 */
  NotFound: 'not_found',
  /** 409: this reviewer already reviewed the request. */
  AlreadyReviewed: 'already_reviewed',
  /** 409: the request is not in a state that allows this (terminal states are terminal). */
  InvalidState: 'invalid_state',
  /** 409: `fingerprint` given with a review does not match the request. */
  FingerprintMismatch: 'fingerprint_mismatch',
  /** 422: the same Idempotency-Key was used with a different body. */
  IdempotencyKeyReused: 'idempotency_key_reused',
  /** 429 (with Retry-After): too many at once, e.g. pending requests per role, break-glass uses per week. */
  RateLimited: 'rate_limited',
  // ---- the lifecycle's ----
  /** 400: `starts_at` is unparsable, past, or too far ahead. */
  InvalidStart: 'invalid_start',
  /** 400: the role has `require_review_comment` and the review has none. */
  CommentRequired: 'comment_required',
  // ---- governance's ----
  /** 403: an access review removed the caller's access to the role (the message names it). */
  AccessRemoved: 'access_removed',
  /** 503: the database or the audit log cannot take the change; nothing changed. */
  Unavailable: 'unavailable',
  /** 500: a bug; the broker logs it with a request id. */
  Internal: 'internal',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorBody {
  error: { code: ErrorCode | string; message: string; hint?: string };
}
