import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyView from '@fastify/view';
import { Eta } from 'eta/core';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AuditAppendError, HttpError } from '../errors.js';
import { REPORT_TEMPLATES } from '../governance/report/templates.js';
import { isDatabaseError } from '../store/database.js';
import { authRoutes } from './auth-routes.js';
import { Pages, type PagesDeps, safeReturnTo } from './context.js';
import { governancePageRoutes } from './governance.js';
import { GOVERNANCE_STYLE, GOVERNANCE_TEMPLATES } from './governance-templates.js';
import { pageRoutes } from './routes.js';
import { STYLE, TEMPLATES } from './templates.js';

export type { PagesDeps } from './context.js';

/**
 * The review pages under `/ui/`, served by the broker on its own port: server-rendered HTML
 * (Eta, auto-escaping, through @fastify/view), no JavaScript, one small stylesheet. The
 * framework's own plugins do the security work, scoped to these routes only (the JSON API keeps
 * its own rules and never accepts a form):
 *
 * - @fastify/helmet: a strict Content-Security-Policy (nothing but the broker's stylesheet; no
 *   script at all; forms post only to the broker, or to the identity provider a step-up sends
 *   them to), `frame-ancestors 'none'` and `X-Frame-Options: DENY` so an Approve button can never
 *   sit under someone else's page, no referrer to other sites, HSTS and
 *   `upgrade-insecure-requests` off loopback;
 * - @fastify/cookie and @fastify/csrf-protection: every form carries a token bound to its
 *   session (HMAC with a key every replica shares); a POST from a foreign Origin is refused
 *   before the token is even looked at;
 * - @fastify/formbody: forms, and only forms, on these routes.
 */
export const pagesPlugin: FastifyPluginAsync<{ deps: PagesDeps }> = async (app, { deps }) => {
  const pages = new Pages(deps);
  const publicOrigin = new URL(deps.publicUrl).origin;
  app.decorateRequest('pageSession', null);

  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: pages.names.csrf,
    cookieOpts: { path: '/', httpOnly: true, sameSite: 'lax', secure: deps.secure },
    // Only from the form: a header would let a script elsewhere try tokens.
    getToken: (req) => {
      const body = req.body as Record<string, unknown> | null | undefined;
      const t = body && typeof body === 'object' ? body._csrf : undefined;
      return typeof t === 'string' ? t : undefined;
    },
    getUserInfo: (req) => req.pageSession?.idHash ?? '',
    csrfOpts: { hmacKey: deps.csrfKey, userInfo: true },
  });
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        // A step-up answers an Approve with a redirect to the identity provider, and browsers
        // hold the redirect of a form's submission to form-action too.
        formAction: [
          () => {
            const idp = deps.signIn?.authorizationOrigin;
            return idp && idp !== publicOrigin ? `'self' ${idp}` : "'self'";
          },
        ],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        ...(deps.secure ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    frameguard: { action: 'deny' },
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with the
    // pages' own forms, and the Origin check below could not tell them from a sandboxed frame's.
    // Nothing of a page's address leaves for another site either way.
    referrerPolicy: { policy: 'same-origin' },
    hsts: deps.secure ? { maxAge: 31_536_000 } : false,
    crossOriginOpenerPolicy: { policy: 'same-origin' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    crossOriginEmbedderPolicy: false,
    originAgentCluster: true,
    xDnsPrefetchControl: { allow: false },
    xPermittedCrossDomainPolicies: { permittedPolicies: 'none' },
    xDownloadOptions: true,
    xPoweredBy: true,
  });
  const eta = new Eta({ autoEscape: true, cache: true });
  for (const [name, text] of Object.entries(TEMPLATES)) eta.loadTemplate(name, text);
  // Governance's pages, and the report's body and charts they share with the standalone file.
  for (const [name, text] of Object.entries({ ...REPORT_TEMPLATES, ...GOVERNANCE_TEMPLATES }))
    eta.loadTemplate(name, text);
  await app.register(fastifyView, { engine: { eta }, production: true });

  // Pages hold personal data and CSRF tokens: never cached, by the browser or a proxy.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  app.setNotFoundHandler(async (_req, reply) =>
    pages.message(reply, 404, 'No such page', {
      action: { href: pages.link('/ui/'), label: 'Your requests' },
    }),
  );

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    const page = (status: number, heading: string, message: string, hint?: string) =>
      pages.message(reply, status, heading, {
        problem: { message, hint },
        action: { href: pages.link('/ui/'), label: 'Your requests' },
      });
    if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET')
      return page(
        403,
        'Nothing was recorded',
        'This form is out of date, or was not sent from this page.',
        'Go back, reload the page, and try again.',
      );
    if (err instanceof HttpError)
      return page(err.status, 'Nothing was recorded', err.message, err.hint);
    if (err instanceof AuditAppendError)
      return page(
        503,
        'Nothing was recorded',
        'The audit log cannot record this change, so nothing was changed.',
        'Try again later; operators: check the database (see the broker log).',
      );
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return page(413, 'Too large', 'That form was far larger than any of these pages sends.');
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return page(415, 'Not a form', 'These pages accept HTML forms only.');
    if (isDatabaseError(err))
      return page(
        503,
        'Try again shortly',
        'The database cannot take this right now, so nothing was changed.',
      );
    req.log.error({ err, reqId: req.id }, 'review page failed');
    return page(
      500,
      'Something went wrong',
      `An internal error (request ${req.id}).`,
      'This is a bug in the broker; operators will find the request id in its log.',
    );
  });

  app.get('/style.css', async (_req, reply) =>
    reply
      .header('content-type', 'text/css; charset=utf-8')
      .header('cache-control', 'public, max-age=3600')
      .send(`${STYLE}${GOVERNANCE_STYLE}`),
  );

  /** Every POST: a form, from this site, within a live session; then the CSRF token. */
  const formFromHere = async (req: FastifyRequest, reply: FastifyReply) => {
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if ((origin !== undefined && origin !== publicOrigin) || site === 'cross-site') {
      req.log.warn({ origin, site }, 'review pages: refused a form from another site');
      return pages.message(reply, 403, 'Nothing was recorded', {
        problem: {
          message: 'This form was sent from another site, so it was refused.',
          hint: `Open ${pages.link('/ui/')} at ${publicOrigin} and decide there.`,
        },
      });
    }
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      ?.trim();
    if (type !== 'application/x-www-form-urlencoded')
      return pages.message(reply, 415, 'Not a form', {
        problem: { message: 'These pages accept HTML forms only.' },
      });
    return undefined;
  };
  const live = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!deps.signIn) return pages.unavailable(reply);
    const s = await pages.session(req);
    if (typeof s !== 'string') return undefined;
    const back = safeReturnTo(
      req.url.split('?')[0]!.replace(/\/(review|cancel|revoke|extend|break-glass)$/, ''),
    );
    return pages.message(reply, 401, 'Nothing was recorded', {
      problem: {
        message:
          s === 'expired'
            ? 'Your session has expired, so nothing was recorded.'
            : 'You are not signed in (or your session ended), so nothing was recorded.',
        hint: 'Sign in again, check the request, and decide again.',
      },
      action: {
        href: pages.link(`/ui/auth/sign-in?return_to=${encodeURIComponent(back)}`),
        label: 'Sign in again',
      },
    });
  };
  const guards = [formFromHere, live, app.csrfProtection];

  pageRoutes(app, pages, guards);
  authRoutes(app, pages, guards);
  if (deps.governance) governancePageRoutes(app, pages, guards, deps.governance);
};
