import type { FastifyInstance } from 'fastify';
import { cookieOptions, type Pages, problemOf, safeReturnTo } from './context.js';
import { SignInError } from './sign-in.js';

/**
 * Signing in and out of the review pages. `/ui/auth/sign-in` starts a sign-in at the identity
 * provider (any page does the same when there is no session); `/ui/auth/callback` is the web
 * client's redirect URI; `/ui/sign-out` ends the session (a POST with its CSRF token).
 *
 * A new session is made at every sign-in (a session id is never reused across sign-ins, so one
 * planted before sign-in is worthless after it); the previous one is deleted, and a decision
 * waiting for the step-up moves over only when it is the same person.
 */
export function authRoutes(app: FastifyInstance, pages: Pages, guards: unknown[]): void {
  const { sessions, secure } = pages.deps;

  app.get('/auth/sign-in', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    return pages.toSignIn(reply, safeReturnTo(q.return_to));
  });

  app.get('/auth/callback', async (req, reply) => {
    const signIn = pages.deps.signIn;
    if (!signIn) return pages.unavailable(reply);
    const sealed = req.cookies[pages.names.signIn];
    reply.clearCookie(pages.names.signIn, cookieOptions(secure));
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
    let done: Awaited<ReturnType<typeof signIn.finish>>;
    try {
      done = await signIn.finish(query, sealed);
    } catch (err) {
      if (!(err instanceof SignInError)) throw err;
      req.log.info({ reason: err.message }, 'review pages: sign-in not completed');
      return pages.message(reply, err.status, 'Sign-in not completed', {
        problem: problemOf(err),
        action: { href: pages.link('/ui/'), label: 'Start again' },
      });
    }
    const before = await sessions.find(req.cookies[pages.names.session]);
    let intent = null;
    if (before.kind === 'valid') {
      const same =
        before.session.caller.iss === done.caller.iss &&
        before.session.caller.sub === done.caller.sub;
      if (same) intent = before.session.intent;
      await sessions.delete(before.session.idHash);
    }
    const { cookieValue } = await sessions.create(done.caller, intent);
    reply.setCookie(
      pages.names.session,
      cookieValue,
      cookieOptions(secure, Math.floor(sessions.ttlMs / 1000)),
    );
    req.caller = done.caller;
    pages.deps.onSignedIn?.(done.caller);
    req.log.info(
      { acr: done.caller.acr, stepUp: done.stepUp !== undefined },
      'review pages: signed in',
    );
    // A 303 to a clean URL: the code and state never stay in the address bar or the history.
    return reply.redirect(pages.link(done.returnTo), 303);
  });

  app.post('/sign-out', { preHandler: guards } as never, async (req, reply) => {
    await sessions.delete(req.pageSession!.idHash);
    reply.clearCookie(pages.names.session, cookieOptions(secure));
    reply.clearCookie(pages.names.csrf, cookieOptions(secure));
    req.pageSession = null;
    return pages.message(reply, 200, 'Signed out', {
      paragraphs: [
        'You are signed out of the review pages. Your identity provider may still remember you; sign out there too on a shared device.',
      ],
      action: { href: pages.link('/ui/'), label: 'Sign in again' },
    });
  });
}
