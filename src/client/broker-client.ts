import { Agent, type Dispatcher, request } from 'undici';
import type { ErrorBody } from '../api/errors.js';
import type {
  AccessRequest,
  AuditPage,
  ConfigResponse,
  CreateRequestBody,
  CredentialResponse,
  MeResponse,
  RequestPage,
  RequestState,
  ReviewBody,
  RevocationsResponse,
  RolesResponse,
} from '../api/schemas.js';
import { parseStepUpChallenge } from '../api/step-up.js';
import { VERSION } from '../api/version.js';
import type { SessionManager } from '../auth/session.js';
import type { Clock } from '../cli/context.js';
import { ApiError, AuthError, InterruptedError, UnreachableError } from '../cli/errors.js';

/**
 * The broker's API v1 over HTTP (undici): connect and read timeouts, retries with exponential
 * backoff and full jitter on connection errors, 502, 503, 504 and 429 (honouring Retry-After),
 * one step-up retry on an RFC 9470 challenge, and the broker's JSON errors turned into ApiError
 * (which carries the exit code). It never prints; `debug` receives one line per attempt.
 */
export interface BrokerClientOptions {
  server: string;
  /** Absent for unauthenticated calls (GET /v1/config). */
  session?: SessionManager;
  clock: Clock;
  /** Aborts waits and retries (Ctrl-C). */
  signal?: AbortSignal;
  /** Attempts for retryable failures (default 5). */
  attempts?: number;
  /** First backoff step in ms (default 250; doubles up to 5 s). */
  backoffMs?: number;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  debug?: (line: string) => void;
}

export interface CallOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  auth?: boolean;
  /** Header/body timeout for this call (long polls need more than the default). */
  readTimeoutMs?: number;
  /** Whether a POST may be retried after the request may have reached the broker. */
  idempotent?: boolean;
}

export interface CallResult<T> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

/** Connection failures after which a request surely did not reach the broker. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
/** Failures after which the broker may or may not have seen the request. */
const MAYBE_SENT = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (NOT_SENT.has(code) || MAYBE_SENT.has(code))) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export class BrokerClient {
  readonly server: string;
  readonly #opts: BrokerClientOptions;
  readonly #dispatcher: Dispatcher;

  constructor(opts: BrokerClientOptions) {
    this.server = opts.server;
    this.#opts = opts;
    this.#dispatcher = new Agent({
      connect: { timeout: opts.connectTimeoutMs ?? 5_000 },
      keepAliveTimeout: 4_000,
    });
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  config(): Promise<ConfigResponse> {
    return this.#get('/v1/config', { auth: false });
  }
  me(): Promise<MeResponse> {
    return this.#get('/v1/me');
  }
  roles(): Promise<RolesResponse> {
    return this.#get('/v1/roles');
  }
  async createRequest(body: CreateRequestBody, idempotencyKey: string): Promise<AccessRequest> {
    const r = await this.call<AccessRequest>('POST', '/v1/requests', {
      body,
      headers: { 'idempotency-key': idempotencyKey },
      idempotent: true,
    });
    return r.body;
  }
  getRequest(id: string): Promise<AccessRequest> {
    return this.#get(`/v1/requests/${encodeURIComponent(id)}`);
  }
  /**
   * One long poll: answers when the request changes from `etag` (or its state at the call), or
   * after `waitMs`. Returns the request and its ETag for the next poll.
   */
  async pollRequest(
    id: string,
    waitMs: number,
    etag?: string,
  ): Promise<{ request: AccessRequest; etag: string | undefined }> {
    const seconds = Math.max(1, Math.round(waitMs / 1000));
    const r = await this.call<AccessRequest>('GET', `/v1/requests/${encodeURIComponent(id)}`, {
      query: { wait: `${seconds}s` },
      headers: etag ? { 'if-none-match': etag } : {},
      readTimeoutMs: waitMs + 15_000,
    });
    const tag = r.headers.etag;
    return { request: r.body, etag: typeof tag === 'string' ? tag : undefined };
  }
  listRequests(
    q: {
      state?: RequestState;
      mine?: boolean;
      reviewable?: boolean;
      cursor?: string;
      limit?: number;
    } = {},
  ): Promise<RequestPage> {
    return this.#get('/v1/requests', { query: q });
  }
  async review(id: string, body: ReviewBody): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `/v1/requests/${encodeURIComponent(id)}/reviews`, {
        body,
      })
    ).body;
  }
  async cancel(id: string): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `/v1/requests/${encodeURIComponent(id)}/cancel`, {
        body: {},
        idempotent: true,
      })
    ).body;
  }
  async revoke(id: string): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `/v1/requests/${encodeURIComponent(id)}/revoke`, {
        body: {},
        idempotent: true,
      })
    ).body;
  }
  async credential(id: string): Promise<CredentialResponse> {
    return (
      await this.call<CredentialResponse>(
        'POST',
        `/v1/requests/${encodeURIComponent(id)}/credential`,
        { body: {}, idempotent: true },
      )
    ).body;
  }
  audit(q: { after?: number; limit?: number } = {}): Promise<AuditPage> {
    return this.#get('/v1/audit', { query: q });
  }
  revocations(): Promise<RevocationsResponse> {
    return this.#get('/v1/revocations');
  }

  async #get<T>(path: string, opts: CallOptions = {}): Promise<T> {
    return (await this.call<T>('GET', path, opts)).body;
  }

  /** One API call with retries, step-up and error mapping. */
  async call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    opts: CallOptions = {},
  ): Promise<CallResult<T>> {
    const attempts = this.#opts.attempts ?? 5;
    const auth = opts.auth ?? true;
    let steppedUp = false;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.#checkAborted();
      const url = new URL(this.server + path);
      for (const [k, v] of Object.entries(opts.query ?? {}))
        if (v !== undefined) url.searchParams.set(k, String(v));
      const headers: Record<string, string> = {
        accept: 'application/json',
        'user-agent': `jitctl/${VERSION}`,
        ...opts.headers,
      };
      if (auth) {
        if (!this.#opts.session) throw new AuthError('not signed in');
        headers.authorization = `Bearer ${(await this.#opts.session.bearer()).reveal()}`;
      }
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers['content-type'] = 'application/json';
      }
      let res: Dispatcher.ResponseData;
      try {
        this.#opts.debug?.(`${method} ${url.pathname}${url.search} (attempt ${attempt})`);
        const readTimeout = opts.readTimeoutMs ?? this.#opts.readTimeoutMs ?? 15_000;
        res = await request(url, {
          method,
          headers,
          body,
          dispatcher: this.#dispatcher,
          headersTimeout: readTimeout,
          bodyTimeout: readTimeout,
          ...(this.#opts.signal ? { signal: this.#opts.signal } : {}),
        });
      } catch (err) {
        this.#checkAborted();
        const code = errorCode(err);
        const retryable =
          code !== undefined &&
          (NOT_SENT.has(code) || method === 'GET' || opts.idempotent === true);
        lastError = err;
        if (retryable && attempt < attempts) {
          await this.#backoff(attempt);
          continue;
        }
        if (code !== undefined) {
          throw new UnreachableError(`cannot reach the broker at ${this.server} (${code})`, {
            hint: 'check that the broker is running and that --server / JITCTL_SERVER is right',
            cause: err,
          });
        }
        throw err;
      }
      const text = await res.body.text();
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        let parsed: T;
        try {
          parsed = (text ? JSON.parse(text) : undefined) as T;
        } catch {
          throw new ApiError(
            status,
            'bad_response',
            `the broker at ${this.server} answered with something that is not JSON`,
          );
        }
        return { status, body: parsed, headers: res.headers };
      }
      const retryAfter = parseRetryAfter(res.headers['retry-after'], this.#opts.clock.now());
      if (
        (status === 502 || status === 503 || status === 504 || status === 429) &&
        attempt < attempts &&
        (method === 'GET' || opts.idempotent || status !== 502)
      ) {
        lastError = new ApiError(status, 'unavailable', `the broker answered ${status}`);
        await this.#backoff(attempt, retryAfter);
        continue;
      }
      const err = errorFromBody(status, text, this.server);
      if (status === 401 && auth && this.#opts.session) {
        const challenge = parseStepUpChallenge(firstHeader(res.headers['www-authenticate']));
        if (challenge && !steppedUp) {
          steppedUp = true;
          await this.#opts.session.stepUp(challenge, err.message);
          attempt--; // the step-up retry does not count against the retry budget
          continue;
        }
        if (challenge) {
          throw new AuthError(`the broker still wants a stronger sign-in: ${err.message}`, {
            hint: 'run `jitctl login` and complete the MFA step',
          });
        }
        throw new AuthError(err.message, { hint: err.hint ?? 'run `jitctl login`' });
      }
      throw err;
    }
    throw new UnreachableError(
      `the broker at ${this.server} did not answer after ${attempts} attempts`,
      {
        cause: lastError,
        hint: 'check that the broker is running and reachable',
      },
    );
  }

  #checkAborted(): void {
    const s = this.#opts.signal;
    if (s?.aborted) throw s.reason instanceof Error ? s.reason : new InterruptedError();
  }

  async #backoff(attempt: number, retryAfterMs?: number): Promise<void> {
    const base = this.#opts.backoffMs ?? 250;
    const cap = Math.min(5_000, base * 2 ** (attempt - 1));
    const ms = retryAfterMs !== undefined ? Math.min(retryAfterMs, 30_000) : Math.random() * cap;
    await this.#opts.clock.sleep(ms, this.#opts.signal);
  }
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3), in ms. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number,
): number | undefined {
  const v = firstHeader(value);
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function errorFromBody(status: number, text: string, server: string): ApiError {
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>;
    if (body.error && typeof body.error.message === 'string') {
      return new ApiError(
        status,
        String(body.error.code ?? 'error'),
        body.error.message,
        body.error.hint,
      );
    }
  } catch {
    // not JSON: a proxy or something that is not a jitctl broker
  }
  return new ApiError(status, 'http_error', `the broker at ${server} answered HTTP ${status}`);
}
