import { Agent, type Dispatcher, request } from 'undici';
import type {
  AccessRequest,
  AuditCheckpoint,
  AuditPage,
  BreakGlassFilter,
  BreakGlassReviewBody,
  ConfigResponse,
  CreateRequestBody,
  CredentialResponse,
  ExtendBody,
  MeResponse,
  RequestPage,
  RequestState,
  ReviewBody,
  RolesResponse,
  TokenExchangeResponse,
} from '../api/schemas.js';
import type { Secret } from '../api/secret.js';
import { parseStepUpChallenge } from '../api/step-up.js';
import { VERSION } from '../api/version.js';
import {
  ApiError,
  AuthError,
  InterruptedError,
  JitError,
  UnreachableError,
} from '../cli/errors.js';
import { safe } from '../cli/output.js';
import {
  backoffDelay,
  errorCode,
  errorFromBody,
  firstHeader,
  MAX_RETRY_AFTER_MS,
  MAYBE_SENT,
  NOT_SENT,
  parseRetryAfter,
  RETRYABLE_STATUS,
  readBody,
} from './http.js';
import type {
  BrokerClientOptions,
  CallOptions,
  CallResult,
  PollOptions,
  ResponseSchema,
} from './types.js';

/**
 * The broker's 401 messages for a token it can never accept (signed with keys it does not know,
 * or by an issuer it does not trust), as opposed to one that merely expired.
 */
const FOREIGN_SESSION =
  /signed with a key .* does not (publish|have)|signature does not verify|which this broker does not trust/;

export { backoffDelay, MAX_BACKOFF_MS, MAX_RETRY_AFTER_MS, parseRetryAfter } from './http.js';

/**
 * The broker's API v1 over HTTP (undici): connect and read timeouts, retries with exponential
 * backoff and full jitter on connection errors, 502, 503, 504 and 429 (honouring Retry-After),
 * one step-up retry on an RFC 9470 challenge, and the broker's JSON errors turned into ApiError
 * (which carries the exit code). It never prints; `debug` receives one line per attempt and
 * `onRetry` hears about each failure it is about to retry.
 *
 * What is retried, and why: a request that surely never reached the broker (connection refused,
 * connect timeout, DNS) is always safe to send again. One that may have reached it (reset, read
 * timeout, 502 from a proxy) is sent again only when repeating it cannot do anything twice: GETs,
 * and POSTs the broker makes idempotent (a request with its Idempotency-Key; cancel, revoke and
 * credential, which answer the same way when repeated). A review is never repeated blindly: the
 * broker would answer `already_reviewed` to a review that went through, which is worse than
 * saying the broker is unreachable and letting the person look.
 */
export type {
  BrokerClientOptions,
  CallOptions,
  CallResult,
  PollOptions,
  ResponseSchema,
  RetryEvent,
} from './types.js';

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
    return this.#get('/v1/me', { expect: 'MeResponse' });
  }
  roles(): Promise<RolesResponse> {
    return this.#get('/v1/roles', { expect: 'RolesResponse' });
  }
  /**
   * Files a request. The Idempotency-Key makes the retries safe: the broker answers a repeat
   * with the request the first attempt created.
   */
  async createRequest(body: CreateRequestBody, idempotencyKey: string): Promise<AccessRequest> {
    const r = await this.call<AccessRequest>('POST', '/v1/requests', {
      body,
      headers: { 'idempotency-key': idempotencyKey },
      idempotent: true,
      expect: 'AccessRequest',
    });
    return r.body;
  }
  getRequest(id: string): Promise<AccessRequest> {
    return this.#get(requestPath(id), { expect: 'AccessRequest' });
  }
  /**
   * The request and its ETag. With `waitMs` > 0 this is one long poll: the broker answers as soon
   * as the request differs from `etag` (or from its version when the poll began), or when the
   * wait ends, always with the current request.
   */
  async pollRequest(
    id: string,
    opts: PollOptions,
  ): Promise<{ request: AccessRequest; etag: string | undefined }> {
    const seconds = Math.ceil(Math.max(0, opts.waitMs) / 1000);
    const r = await this.call<AccessRequest>('GET', requestPath(id), {
      query: { wait: seconds > 0 ? `${seconds}s` : undefined },
      headers: opts.etag ? { 'if-none-match': opts.etag } : {},
      readTimeoutMs: seconds * 1000 + 15_000,
      expect: 'AccessRequest',
      ...(opts.attempts !== undefined ? { attempts: opts.attempts } : {}),
    });
    const tag = r.headers.etag;
    return { request: r.body, etag: typeof tag === 'string' ? tag : undefined };
  }
  listRequests(
    q: {
      state?: RequestState | undefined;
      mine?: boolean | undefined;
      reviewable?: boolean | undefined;
      cursor?: string | undefined;
      limit?: number | undefined;
      break_glass?: BreakGlassFilter | undefined;
    } = {},
  ): Promise<RequestPage> {
    return this.#get('/v1/requests', {
      query: { ...q, mine: q.mine || undefined, reviewable: q.reviewable || undefined },
      expect: 'RequestPage',
    });
  }
  async review(id: string, body: ReviewBody): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `${requestPath(id)}/reviews`, {
        body,
        expect: 'AccessRequest',
      })
    ).body;
  }
  async cancel(id: string): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `${requestPath(id)}/cancel`, {
        body: {},
        idempotent: true,
        expect: 'AccessRequest',
      })
    ).body;
  }
  /** Ends a grant; `reason` is shown to the requester and relying parties. */
  async revoke(id: string, reason?: string): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `${requestPath(id)}/revoke`, {
        body: reason === undefined || reason === '' ? {} : { reason },
        idempotent: true,
        expect: 'AccessRequest',
      })
    ).body;
  }
  /**
   * Asks to extend an approved grant. Repeating the same ask answers the extension already
   * waiting, so it is retried like a GET.
   */
  async extend(id: string, body: ExtendBody): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `${requestPath(id)}/extend`, {
        body,
        idempotent: true,
        expect: 'AccessRequest',
      })
    ).body;
  }
  /** Acknowledges or flags a break-glass grant afterwards (never repeated blindly, like a review). */
  async reviewBreakGlass(id: string, body: BreakGlassReviewBody): Promise<AccessRequest> {
    return (
      await this.call<AccessRequest>('POST', `${requestPath(id)}/break-glass-review`, {
        body,
        expect: 'AccessRequest',
      })
    ).body;
  }
  /** Mints a credential for an approved request (each call mints, and audits, a new one). */
  async credential(id: string): Promise<CredentialResponse> {
    return (
      await this.call<CredentialResponse>('POST', `${requestPath(id)}/credential`, {
        body: {},
        idempotent: true,
        expect: 'CredentialResponse',
      })
    ).body;
  }
  /**
   * RFC 8693 token exchange (`POST /v1/token`): a pipeline's OIDC token for a broker session.
   * Unauthenticated and form-encoded; refusals come in RFC 6749 §5.2's shape and surface as an
   * ApiError whose code is the OAuth error (`invalid_grant`, …). Repeating it is harmless (each
   * exchange only issues another short session), so it is retried like a GET.
   */
  async exchangeToken(subjectToken: Secret): Promise<TokenExchangeResponse> {
    const r = await this.call<TokenExchangeResponse>('POST', '/v1/token', {
      auth: false,
      form: {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subjectToken.reveal(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      },
      idempotent: true,
      expect: 'TokenExchangeResponse',
    });
    return r.body;
  }
  audit(q: { after?: number; limit?: number } = {}): Promise<AuditPage> {
    return this.#get('/v1/audit', { query: q, expect: 'AuditPage' });
  }
  /**
   * The audit events after `after`. With `waitMs` > 0 this is one long poll: when nothing follows
   * `after` yet, the broker answers as soon as something is appended (or when the wait ends,
   * with no items). `withRequests` adds each named request's role and requester.
   */
  async pollAudit(q: {
    after: number;
    limit: number;
    waitMs?: number;
    withRequests?: boolean;
    attempts?: number;
  }): Promise<AuditPage> {
    const seconds = Math.ceil(Math.max(0, q.waitMs ?? 0) / 1000);
    const r = await this.call<AuditPage>('GET', '/v1/audit', {
      query: {
        after: q.after,
        limit: q.limit,
        wait: seconds > 0 ? `${seconds}s` : undefined,
        with: q.withRequests ? 'requests' : undefined,
      },
      readTimeoutMs: seconds * 1000 + 15_000,
      expect: 'AuditPage',
      ...(q.attempts !== undefined ? { attempts: q.attempts } : {}),
    });
    return r.body;
  }
  /** The audit chain's head signed by the broker (`GET /v1/audit/checkpoint`). */
  auditCheckpoint(): Promise<AuditCheckpoint> {
    return this.#get('/v1/audit/checkpoint', { expect: 'AuditCheckpoint' });
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
    const attempts = Math.max(1, opts.attempts ?? this.#opts.attempts ?? 5);
    const auth = opts.auth ?? true;
    const mayRepeat = method === 'GET' || opts.idempotent === true;
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
      if (opts.form !== undefined) {
        body = new URLSearchParams(opts.form).toString();
        headers['content-type'] = 'application/x-www-form-urlencoded';
      } else if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers['content-type'] = 'application/json';
      }
      let res: Dispatcher.ResponseData;
      let text: string;
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
        text = await readBody(res, this.server);
      } catch (err) {
        this.#checkAborted();
        if (err instanceof JitError) throw err;
        const code = errorCode(err);
        const retryable = code !== undefined && (NOT_SENT.has(code) || mayRepeat);
        lastError = err;
        if (retryable && attempt < attempts) {
          await this.#backoff(method, path, attempt, code);
          continue;
        }
        if (code !== undefined) {
          const maybe = MAYBE_SENT.has(code) && !mayRepeat;
          throw new UnreachableError(
            `cannot reach the broker at ${this.server} (${code}${attempt > 1 ? ` after ${attempt} attempts` : ''})`,
            {
              hint: maybe
                ? 'the connection broke after the call was sent, so it may or may not have been done: check with `jitctl show <id>` before trying again'
                : 'check that the broker is running and that --server / JITCTL_SERVER is right',
              cause: err,
            },
          );
        }
        throw err;
      }
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        let parsed: T;
        try {
          parsed = (text ? JSON.parse(text) : undefined) as T;
        } catch {
          throw new ApiError(
            status,
            'bad_response',
            `the broker at ${this.server} answered ${method} ${path} with something that is not JSON`,
            'is --server the URL of a jitctl broker?',
          );
        }
        if (opts.expect) await this.#check(opts.expect, parsed, method, path);
        return { status, body: parsed, headers: res.headers };
      }
      const retryAfter = parseRetryAfter(res.headers['retry-after'], this.#opts.clock.now());
      // 502/504 come from a proxy that may have passed the call on; 503 and 429 mean not done.
      const retryableStatus =
        RETRYABLE_STATUS.has(status) && (mayRepeat || status === 503 || status === 429);
      if (retryableStatus) {
        lastError = errorFromBody(status, text, this.server);
        // A limit of the broker (too many pending requests, break-glass uses): its own message
        // says which, and when it lifts; that is an answer, not an outage.
        if (
          status === 429 &&
          (lastError as ApiError).code === 'rate_limited' &&
          retryAfter !== undefined &&
          retryAfter > MAX_RETRY_AFTER_MS
        ) {
          throw lastError;
        }
        if (retryAfter !== undefined && retryAfter > MAX_RETRY_AFTER_MS) {
          throw new UnreachableError(
            status === 429
              ? `the broker at ${this.server} is limiting requests: ${(lastError as ApiError).message}`
              : `the broker at ${this.server} is unavailable (HTTP ${status}) and asks to come back in ${Math.ceil(retryAfter / 1000)} s`,
            {
              hint: (status === 429 && (lastError as ApiError).hint) || 'try again later',
              cause: lastError,
            },
          );
        }
        if (attempt < attempts) {
          await this.#backoff(method, path, attempt, `HTTP ${status}`, retryAfter);
          continue;
        }
        throw new UnreachableError(
          `the broker at ${this.server} is ${status === 429 ? 'limiting requests' : 'unavailable'} (HTTP ${status} after ${attempt} attempts): ${(lastError as ApiError).message}`,
          { hint: 'try again in a moment', cause: lastError },
        );
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
        if (FOREIGN_SESSION.test(err.message)) {
          // A broker (or its identity provider) that was reset, or --server now names another:
          // the stored session cannot work here, whatever its expiry says.
          throw new AuthError(
            'your session is from another broker or identity provider: sign in again',
            {
              hint: `run \`jitctl login --server ${this.server}\` (the broker said: ${err.message})`,
            },
          );
        }
        throw new AuthError(err.message, { hint: err.hint ?? 'run `jitctl login`' });
      }
      throw err;
    }
    throw new UnreachableError(
      `the broker at ${this.server} did not answer after ${attempts} attempts`,
      { cause: lastError, hint: 'check that the broker is running and reachable' },
    );
  }

  #checkAborted(): void {
    const s = this.#opts.signal;
    // The CLI aborts with an InterruptedError naming the signal; any other reason is Ctrl-C too.
    if (s?.aborted) throw s.reason instanceof JitError ? s.reason : new InterruptedError();
  }

  /**
   * Exponential backoff with full jitter (a random delay up to the step), so that many clients
   * cut off by one broker restart do not all come back in the same millisecond. A Retry-After
   * from the broker replaces the computed delay.
   */
  async #backoff(
    method: string,
    path: string,
    attempt: number,
    reason: string,
    retryAfterMs?: number,
  ): Promise<void> {
    const ms =
      retryAfterMs !== undefined
        ? retryAfterMs
        : backoffDelay(attempt, this.#opts.backoffMs ?? 250, this.#opts.random ?? Math.random);
    this.#opts.onRetry?.({ method, path, attempt, reason, delayMs: ms });
    this.#opts.debug?.(`${reason}; retrying in ${Math.round(ms)} ms`);
    await this.#opts.clock.sleep(ms, this.#opts.signal);
  }

  async #check(schema: ResponseSchema, value: unknown, method: string, path: string) {
    const [schemas, { Value }] = await Promise.all([
      import('../api/schemas.js'),
      import('@sinclair/typebox/value'),
    ]);
    const type = schemas[schema];
    if (Value.Check(type, value)) return;
    const first = Value.Errors(type, value).First();
    const where = first ? `${first.path || '/'}: ${first.message}` : 'unexpected shape';
    throw new JitError(
      `the broker at ${this.server} sent an unexpected answer to ${method} ${path} (${safe(where)})`,
      1,
      { hint: 'is --server the URL of a jitctl broker, and is jitctl up to date?' },
    );
  }
}

function requestPath(id: string): string {
  return `/v1/requests/${encodeURIComponent(id)}`;
}
