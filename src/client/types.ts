import type { SessionManager } from '../auth/session.js';
import type { Clock } from '../cli/context.js';

/** The broker client's options and call shapes (broker-client.ts). */

export interface BrokerClientOptions {
  server: string;
  /** Absent for unauthenticated calls (GET /v1/config). */
  session?: SessionManager;
  clock: Clock;
  /** Aborts waits and retries (Ctrl-C). */
  signal?: AbortSignal;
  /** Attempts for retryable failures (default 5). */
  attempts?: number;
  /** First backoff step in ms (default 250; doubles up to {@link MAX_BACKOFF_MS}). */
  backoffMs?: number;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  /** Jitter source in [0, 1) (default Math.random; tests pin it). */
  random?: () => number;
  debug?: (line: string) => void;
  /** Told about each failure that is about to be retried, with the delay before the retry. */
  onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  method: string;
  path: string;
  attempt: number;
  /** `ECONNREFUSED`, `HTTP 503`, … */
  reason: string;
  delayMs: number;
}

export interface CallOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Sent as application/x-www-form-urlencoded instead of a JSON body (the OAuth token endpoint). */
  form?: Record<string, string>;
  headers?: Record<string, string>;
  auth?: boolean;
  /** Header/body timeout for this call (long polls need more than the default). */
  readTimeoutMs?: number;
  /** Whether a POST may be retried after the request may have reached the broker. */
  idempotent?: boolean;
  /** Attempts for this call (default: the client's). A long poll loop retries on its own. */
  attempts?: number;
  /** The wire type the answer must have (src/api/schemas.ts); checked before it is returned. */
  expect?: ResponseSchema;
}

export interface CallResult<T> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

/** Schemas of src/api/schemas.ts that answers are checked against. */
export type ResponseSchema =
  // governance (src/api/governance.ts)
  | 'Report'
  | 'AccessReview'
  | 'AccessReviewList'
  | 'MeResponse'
  | 'AccessRequest'
  | 'RequestPage'
  | 'CredentialResponse'
  | 'RolesResponse'
  | 'AuditPage'
  | 'AuditCheckpoint'
  | 'TokenExchangeResponse';

export interface PollOptions {
  /** How long the broker may hold the answer (0: answer at once). Capped by the broker at 60 s. */
  waitMs: number;
  /** The ETag of the version already seen: the broker answers when the request differs from it. */
  etag?: string | undefined;
  attempts?: number;
}
