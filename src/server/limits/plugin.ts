import fastifyRateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { formatDuration } from '../../api/duration.js';
import type { ServerClock } from '../clock.js';
import { rateLimited } from '../errors.js';
import { OAuthError } from '../federation/errors.js';
import type { Metrics } from '../metrics.js';
import type { LimitClass, RateLimits } from './settings.js';
import { clockedStore } from './store.js';

/**
 * Installs the abuse limits (settings.ts) on the broker's app with @fastify/rate-limit, before the
 * routes are added so every route gets the hook. Counters live in this process: each replica
 * counts on its own (docs/operations.md says why), so behind a load balancer spreading a client
 * over N replicas, a limit lets through up to N times its count.
 *
 * Per-caller classes are checked after authentication (`preValidation`), so the key is the
 * verified caller, never something a client can vary freely. Per-address classes key on the
 * client address as fastify sees it (`trust_proxy` decides whether X-Forwarded-For counts), with
 * IPv6 addresses grouped by /64, the smallest block one subscriber usually gets.
 *
 * Failed authentications are counted after the answer (a 401 for a presented token, a 4xx from
 * the token exchange) and checked before anything else (`onRequest`, before the token is even
 * parsed): an address over its budget gets 429 on every authenticated door until its window
 * ends, so guessing cannot continue with a good token in between.
 */

/** `early`: counted before authentication (a request without a token; see installRateLimits). */
export type Door = LimitClass | 'exempt' | 'early';

/** Operators' endpoints: monitoring must see the broker whatever clients do. */
const EXEMPT = new Set(['/healthz', '/readyz', '/metrics']);
const TOKEN_ROUTE = '/v1/token';

export interface RateLimitDeps {
  limits: RateLimits;
  clock: ServerClock;
  metrics: Metrics;
  trustProxy: boolean | number | string[];
}

const address = (req: FastifyRequest) => normalizeIP(req.ip);
/**
 * A request that may be signed in: a bearer token, or a cookie (browser pages keep their session
 * in one). Others are counted per address as soon as they arrive.
 */
const credentialed = (req: FastifyRequest) =>
  req.headers.authorization !== undefined || req.headers.cookie !== undefined;

/** Which limit a request counts against, and whose budget. */
export function doorOf(req: FastifyRequest): { door: Door; who: string } {
  const route = req.routeOptions.url;
  if (route !== undefined && EXEMPT.has(route)) return { door: 'exempt', who: '' };
  if (route === TOKEN_ROUTE) return { door: 'token', who: address(req) };
  // The revocation doors authenticate on their own (src/server/routes/credential-status.ts,
  // introspect.ts, revocations.ts), before this runs.
  if (req.relyingParty?.kind === 'resource_server')
    return { door: 'resource_servers', who: req.relyingParty.server.clientId };
  if (req.grantHolder) return { door: 'grant_checks', who: req.grantHolder.requestId };
  if (req.caller) {
    const door = req.method === 'GET' || req.method === 'HEAD' ? 'reads' : 'writes';
    return { door, who: `${req.caller.iss}#${req.caller.sub}` };
  }
  if (!credentialed(req)) return { door: 'early', who: '' };
  return { door: 'public', who: address(req) };
}

const WHAT: Record<LimitClass, string> = {
  reads: 'reads from you',
  writes: 'changes from you',
  token: 'token exchanges from your address',
  public: 'requests from your address',
  auth_failures: 'failed sign-ins from your address',
  grant_checks: 'checks of this grant',
  resource_servers: 'requests from this resource server',
};

const HINT: Record<LimitClass, string> = {
  reads: 'slow down (long polls with ?wait= need no loop); the limit is per person or pipeline',
  writes: 'slow down; the limit is per person or pipeline',
  token: 'exchange one CI token per job and reuse the session it gives',
  public: 'cache /v1/config and the JWKS (they change rarely)',
  auth_failures:
    'fix the token the client sends (`jitctl login` again); every address behind one proxy shares this budget',
  grant_checks:
    'jitctl checks its grant once per command; a loop of thousands of commands a minute is too many',
  resource_servers:
    'cache introspection answers for a few seconds, and follow /v1/revocations with ?wait=',
};

/** The 429 for `door`, in the shape of the route it answers (OAuth's for the token endpoint). */
function refusal(
  req: FastifyRequest,
  door: LimitClass,
  limit: number,
  windowMs: number,
  ttlMs: number,
) {
  const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
  const message = `too many ${WHAT[door]}: at most ${limit} per ${formatDuration(windowMs)}; try again in ${seconds} s`;
  if (req.routeOptions.url === TOKEN_ROUTE) {
    return new OAuthError('rate_limited', message, 429, { 'retry-after': String(seconds) });
  }
  return rateLimited(ttlMs, message, HINT[door]);
}

export async function installRateLimits(app: FastifyInstance, deps: RateLimitDeps): Promise<void> {
  const { limits, metrics } = deps;
  const Store = clockedStore(deps.clock);
  const limitOf = (key: string) => limits[key.slice(0, key.indexOf('|')) as LimitClass];

  await app.register(fastifyRateLimit, {
    global: true,
    hook: 'preValidation',
    store: Store,
    keyGenerator: (req) => {
      const { door, who } = doorOf(req);
      return `${door}|${who}`;
    },
    allowList: (_req, key) =>
      key.startsWith('exempt|') || key.startsWith('early|') || !limitOf(key),
    max: (_req, key) => limitOf(key)?.max ?? Number.MAX_SAFE_INTEGER,
    timeWindow: (_req, key) => limitOf(key)?.windowMs ?? 60_000,
    errorResponseBuilder: (req, ctx) => {
      const door = doorOf(req).door as LimitClass;
      metrics.rateLimited.inc({ door });
      return refusal(req, door, ctx.max, limits[door]?.windowMs ?? 60_000, ctx.ttl);
    },
  });

  // Requests with neither a token nor a cookie count as `public` before anything else runs: a
  // signed-in route refuses them with 401 in its own onRequest hook, which the plugin's hook
  // would never see.
  const open = limits.public;
  if (open) {
    const count = app.createRateLimit({
      store: Store,
      keyGenerator: (req) => `public|${address(req)}`,
      max: open.max,
      timeWindow: open.windowMs,
    });
    app.addHook('onRequest', async (req, reply) => {
      const route = req.routeOptions.url;
      if (credentialed(req) || route === TOKEN_ROUTE) return;
      if (route !== undefined && EXEMPT.has(route)) return;
      const state = await count(req);
      if (state.isAllowed) return;
      const seconds = Math.ceil(state.ttl / 1000);
      reply.header('x-ratelimit-limit', state.max);
      reply.header('x-ratelimit-remaining', state.remaining);
      reply.header('x-ratelimit-reset', seconds);
      if (state.isExceeded) {
        metrics.rateLimited.inc({ door: 'public' });
        throw refusal(req, 'public', open.max, open.windowMs, state.ttl);
      }
    });
  }

  const failures = limits.auth_failures;
  if (failures) {
    const count = app.createRateLimit({
      store: Store,
      keyGenerator: (req) => `auth_failures|${address(req)}`,
      max: failures.max,
      timeWindow: failures.windowMs,
    });
    const authenticating = (req: FastifyRequest) =>
      req.headers.authorization !== undefined || req.routeOptions.url === TOKEN_ROUTE;

    app.addHook('onRequest', async (req) => {
      if (!authenticating(req)) return;
      const state = await count(req, { increment: false });
      if (!state.isAllowed && state.remaining <= 0) {
        metrics.rateLimited.inc({ door: 'auth_failures' });
        throw refusal(req, 'auth_failures', failures.max, failures.windowMs, state.ttl);
      }
    });

    app.addHook('onResponse', async (req, reply) => {
      const status = reply.statusCode;
      const failed =
        req.routeOptions.url === TOKEN_ROUTE
          ? status >= 400 && status < 500 && status !== 429
          : status === 401 &&
            req.headers.authorization !== undefined &&
            // A step-up challenge is a good token asking for more, not a failure.
            !String(reply.getHeader('www-authenticate') ?? '').includes(
              'insufficient_user_authentication',
            );
      if (failed) await count(req);
    });
  }

  // Behind a proxy that is not trusted, every client has the proxy's address and shares the
  // per-address budgets; say so once rather than let operators find out from 429s.
  if (deps.trustProxy === false) {
    let warned = false;
    app.addHook('onRequest', async (req) => {
      if (warned || req.headers['x-forwarded-for'] === undefined) return;
      warned = true;
      req.log.warn(
        { from: req.ip },
        'requests arrive with X-Forwarded-For but trust_proxy is off: per-address rate limits count the proxy as one client; set trust_proxy (docs/operations.md "Rate limits")',
      );
    });
  }
}
