import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import Fastify, {
  type FastifyError,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { ErrorCode } from '../api/errors.js';
import { LIMITS } from '../api/schemas.js';
import type { AppDeps } from './app-deps.js';
import { answerClientError } from './client-errors.js';
import { AuditAppendError, HttpError } from './errors.js';
import { installRateLimits } from './limits/plugin.js';
import { DEFAULT_RATE_LIMITS } from './limits/settings.js';
import { pagesPlugin } from './pages/index.js';
import { responsesForSerializer } from './response-schema.js';
import { auditRoutes } from './routes/audit.js';
import { configRoutes } from './routes/config.js';
import { credentialRoutes } from './routes/credential.js';
import { credentialStatusRoutes } from './routes/credential-status.js';
import { governanceRoutes } from './routes/governance.js';
import { healthRoutes } from './routes/health.js';
import { identityRoutes } from './routes/identity.js';
import { introspectRoutes } from './routes/introspect.js';
import { lifecycleRoutes } from './routes/lifecycle.js';
import { requestRoutes } from './routes/requests.js';
import { reviewRoutes } from './routes/reviews.js';
import { revocationRoutes } from './routes/revocations.js';
import { tokenRoutes } from './routes/token.js';
import { useRoutes } from './routes/uses.js';
import { wellKnownRoutes } from './routes/well-known.js';
import { isDatabaseError } from './store/database.js';

/**
 * The broker's HTTP application (fastify/demo's shape): `buildApp` assembles routes around ready
 * dependencies and never listens, so tests can `inject()` and `start.ts` owns the socket.
 *
 * Input is validated strictly: ajv neither coerces types nor drops unknown properties, so a
 * number where a string belongs or an extra field is a 400 that names the field, never a silently
 * different request. Every error, fastify's own included (404, 413, 415, malformed JSON), has the
 * API's `{"error": {code, message, hint?}}` shape.
 */

export type { AppDeps, OidcSettings } from './app-deps.js';

/** Characters valid in JSON strings that reorder or hide text on a terminal: sent escaped. */
const BIDI_AND_SEPARATORS = /[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const options: FastifyHttpOptions<Server, Logger> = {
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: LIMITS.bodyBytes,
    // A hop count is valid at runtime (proxy-addr) though fastify's types only list the others.
    trustProxy: (deps.trustProxy ?? false) as boolean,
    requestIdHeader: false,
    genReqId: () => `r_${randomBytes(6).toString('base64url')}`,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // Errors the router raises before any route (bad percent-encoding, an overlong id): without
    // this fastify answers them in its own shape, not the API's. No hook runs for these replies.
    frameworkErrors: (err, req, reply) => {
      commonHeaders(req, reply as FastifyReply);
      return sendError(toHttpError(err, req), reply as FastifyReply);
    },
    // Requests the HTTP parser refuses (431, 400, 408) get the API's error shape too.
    clientErrorHandler: answerClientError,
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: false,
        allErrors: false,
      },
    },
  };
  if (deps.serverFactory) options.serverFactory = deps.serverFactory;
  const app = Fastify(options) as unknown as FastifyInstance;

  // Only JSON bodies: a text/plain body to a JSON API is a client bug, answered 415.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('caller', null);

  // Response schemas rewritten so that their serializers run no validator (response-schema.ts).
  app.addHook('onRoute', (route) => {
    if (route.schema?.response)
      route.schema = { ...route.schema, response: responsesForSerializer(route.schema.response) };
  });

  app.addHook('onSend', async (req, reply, payload) => {
    commonHeaders(req, reply);
    if (typeof payload === 'string' && String(reply.getHeader('content-type')).includes('json')) {
      return payload.replace(
        BIDI_AND_SEPARATORS,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
      );
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const seconds = reply.elapsedTime / 1000;
    deps.metrics.httpRequests.inc({ method: req.method, route, status: String(status) });
    deps.metrics.httpDuration.observe({ method: req.method, route }, seconds);
    const line = {
      method: req.method,
      route,
      status,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(req.caller ? { caller: `${req.caller.iss}#${req.caller.sub}` } : {}),
    };
    if (status >= 500) req.log.error(line, 'request failed');
    else req.log.info(line, 'request');
  });

  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    return reply
      .code(404)
      .send(
        new HttpError(
          404,
          ErrorCode.NotFound,
          `no such endpoint: ${req.method} ${path.slice(0, 200)}`,
          'the API is documented in docs/api.md of the jitctl package',
        ).toBody(),
      );
  });

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    const e = toHttpError(err, req);
    if (e.status >= 500) {
      req.log.error({ err, reqId: req.id }, 'request failed');
    }
    if (e.status === 401 || e.status === 403) deps.metrics.authFailures.inc({ code: e.code });
    return sendError(e, reply);
  });

  // Before any route: the rate limiter hooks every route added after it.
  await installRateLimits(app, {
    limits: deps.rateLimits ?? DEFAULT_RATE_LIMITS,
    clock: deps.clock,
    metrics: deps.metrics,
    trustProxy: deps.trustProxy ?? false,
  });

  /** onRequest hook for signed-in routes: verify the bearer token before the body is read. */
  const authenticate = async (req: FastifyRequest) => {
    req.caller = await deps.authenticator.authenticate(req.headers.authorization);
  };

  await app.register(healthRoutes, { deps });
  await app.register(wellKnownRoutes, { deps });
  await app.register(configRoutes, { deps });
  await app.register(tokenRoutes, { deps });
  // Revocation: doors with their own authentication (a credential's holder, resource servers).
  await app.register(credentialStatusRoutes, { deps });
  await app.register(introspectRoutes, { deps });
  await app.register(revocationRoutes, { deps });
  await app.register(async (signedIn) => {
    signedIn.addHook('onRequest', authenticate);
    await signedIn.register(identityRoutes, { deps });
    await signedIn.register(requestRoutes, { deps });
    await signedIn.register(reviewRoutes, { deps });
    await signedIn.register(credentialRoutes, { deps });
    await signedIn.register(auditRoutes, { deps });
    // The lifecycle: extend a grant, review a break-glass grant afterwards.
    await signedIn.register(lifecycleRoutes, { deps });
    await signedIn.register(useRoutes, { deps });
    // Governance: the access report and access reviews (docs/governance.md).
    if (deps.governance)
      await signedIn.register(governanceRoutes, { deps, governance: deps.governance });
  });
  // The review pages: their own cookies, forms, CSP and error pages, scoped to /ui.
  if (deps.pages) await app.register(pagesPlugin, { prefix: '/ui', deps: deps.pages });
  return app;
}

function commonHeaders(req: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', req.id);
  reply.header('x-content-type-options', 'nosniff');
  if (req.url.startsWith('/v1/')) reply.header('cache-control', 'no-store');
}

function sendError(e: HttpError, reply: FastifyReply): FastifyReply {
  for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
  return reply.code(e.status).send(e.toBody());
}

function fieldName(instancePath: string, fallback?: string): string {
  const path = instancePath.replace(/^\//, '').replace(/\//g, '.');
  return path || fallback || 'body';
}

/** fastify's and ajv's errors, database failures and bugs, as API errors. */
function toHttpError(err: FastifyError, req: FastifyRequest): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof AuditAppendError) {
    return new HttpError(
      503,
      ErrorCode.Unavailable,
      'the audit log cannot record this change, so nothing was changed',
      'try again later; operators: check the database (see the broker log)',
      { 'retry-after': '5' },
    );
  }
  if (err.validation && err.validation.length > 0) {
    const v = err.validation[0]!;
    const params = v.params as Record<string, unknown>;
    const where = err.validationContext === 'querystring' ? 'query parameter' : 'field';
    if (v.keyword === 'additionalProperties') {
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        `unexpected ${where} \`${String(params.additionalProperty)}\``,
        'remove it; see the API reference for the fields this endpoint takes',
      );
    }
    if (v.keyword === 'required') {
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        `\`${String(params.missingProperty)}\` is required`,
      );
    }
    const name = fieldName(v.instancePath);
    if (v.keyword === 'type') {
      if (name === 'body')
        return new HttpError(400, ErrorCode.BadRequest, 'the body must be a JSON object');
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        `\`${name}\` must be a ${String(params.type)}`,
      );
    }
    if (v.keyword === 'maxLength')
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        `\`${name}\` is longer than ${String(params.limit)} characters`,
      );
    if (v.keyword === 'minLength')
      return new HttpError(400, ErrorCode.BadRequest, `\`${name}\` must not be empty`);
    if (v.keyword === 'const' || v.keyword === 'anyOf' || v.keyword === 'enum') {
      if (name === 'decision')
        return new HttpError(400, ErrorCode.BadRequest, '`decision` must be "approve" or "deny"');
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        `\`${name}\` has a value that is not allowed`,
      );
    }
    return new HttpError(400, ErrorCode.BadRequest, `\`${name}\` ${v.message ?? 'is invalid'}`);
  }
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        'the URL has a malformed %-escape',
        'escape a literal % as %25',
      );
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new HttpError(
        414,
        ErrorCode.BadRequest,
        'a segment of the URL is longer than 200 characters',
        'request ids look like req_7Hq2Xn4pQr9a',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpError(
        413,
        ErrorCode.PayloadTooLarge,
        `the body is larger than ${LIMITS.bodyBytes / 1024} KiB`,
        'requests are small JSON objects; shorten the reason or comment',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpError(
        415,
        ErrorCode.UnsupportedMediaType,
        `bodies must be JSON, not ${JSON.stringify(req.headers['content-type'] ?? '')}`,
        'send Content-Type: application/json',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HttpError(
        400,
        ErrorCode.BadRequest,
        'the body is empty but Content-Type says JSON',
        'send {} for no fields',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError(400, ErrorCode.BadRequest, 'the Content-Length does not match the body');
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new HttpError(400, ErrorCode.BadRequest, 'the body is not valid JSON');
  }
  if (
    typeof err.statusCode === 'number' &&
    err.statusCode >= 400 &&
    err.statusCode < 500 &&
    !isDatabaseError(err)
  ) {
    return new HttpError(err.statusCode, ErrorCode.BadRequest, err.message);
  }
  if (isDatabaseError(err)) {
    return new HttpError(
      503,
      ErrorCode.Unavailable,
      'the database cannot take this right now, so nothing was changed',
      'try again shortly; operators: see the broker log',
      { 'retry-after': '2' },
    );
  }
  return new HttpError(
    500,
    ErrorCode.Internal,
    `internal error (request ${req.id})`,
    'this is a bug in the broker; operators will find the request id in its log',
  );
}
