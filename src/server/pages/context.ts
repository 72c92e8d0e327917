import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../../api/errors.js';
import { parseStepUpChallenge } from '../../api/step-up.js';
import type { AuditChainWatch } from '../audit/chain-watch.js';
import type { ServerClock } from '../clock.js';
import { HttpError } from '../errors.js';
import type { Governance } from '../governance/index.js';
import type { Caller } from '../policy/types.js';
import type { RequestService } from '../requests/service.js';
import type { Db } from '../store/database.js';
import type { PageSession, SessionStore } from './sessions.js';
import { SignInError, type StepUpAsk, type WebSignIn } from './sign-in.js';

/**
 * What every page route needs: the same RequestService the API calls (every rule, audit event
 * and refusal comes from there), the session store, the sign-in, and the helpers that turn a
 * request into a page, a redirect to the identity provider, or a refusal a person can read.
 */
export interface PagesDeps {
  service: RequestService;
  db: Db;
  clock: ServerClock;
  publicUrl: string;
  /** Undefined when the pages cannot sign anyone in; `unavailable` says why. */
  signIn: WebSignIn | undefined;
  /** Why the pages are off (shown on every page), when `signIn` is undefined. */
  unavailable: string[];
  sessions: SessionStore;
  chain: AuditChainWatch;
  /** 32 bytes shared by the replicas: CSRF tokens are bound to their session with it. */
  csrfKey: Buffer;
  /** Cookies are `Secure` (and `__Host-`) unless the public URL is plain http on loopback. */
  secure: boolean;
  /** Group names of auditors (named when someone else asks for the audit log). */
  auditors: string[];
  /** Told of each sign-in (the people directory records who signed in, with email and groups). */
  onSignedIn?: ((caller: Caller) => void) | undefined;
  /** Reports and access reviews (src/server/governance); absent: those pages are not served. */
  governance?: Governance | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The review pages' session, once loaded (null: none, or not a page route). */
    pageSession: PageSession | null;
  }
}

export interface CookieNames {
  session: string;
  signIn: string;
  csrf: string;
}

/** `__Host-` cookies cannot be set by another subdomain, nor for a path or domain: https only. */
export function cookieNames(secure: boolean): CookieNames {
  const p = secure ? '__Host-' : '';
  return { session: `${p}jitctl-session`, signIn: `${p}jitctl-signin`, csrf: `${p}jitctl-csrf` };
}

/**
 * SameSite=Lax, not Strict: a link in a chat or an email is a cross-site navigation, and so is
 * the identity provider's redirect back; a Strict cookie would not be sent on either and the
 * person would look signed out. Lax cookies are still never sent with a cross-site POST, and
 * every form also carries a CSRF token and is refused from a foreign Origin.
 */
export function cookieOptions(secure: boolean, maxAgeS?: number) {
  return {
    path: '/',
    httpOnly: true,
    sameSite: 'lax' as const,
    secure,
    ...(maxAgeS !== undefined ? { maxAge: maxAgeS } : {}),
  };
}

/** The path of the broker under its public URL (a proxy may mount it under one), without `/`. */
export const basePath = (publicUrl: string) => new URL(publicUrl).pathname.replace(/\/+$/, '');

const RETURN_TO =
  /^\/ui\/(?:requests\/req_[A-Za-z0-9_-]{1,64}|audit(?:\?after=\d{1,15})?|reports(?:\?since=[\w%.:+-]{1,64}(?:&role=[\w%.:-]{1,200})?)?|access-reviews(?:\/ar_[A-Za-z0-9]{12})?)?$/;

/** Only the pages' own paths are places to come back to after signing in (no open redirect). */
export function safeReturnTo(value: unknown): string {
  return typeof value === 'string' && RETURN_TO.test(value) ? value : '/ui/';
}

export const requestPath = (id: string) => `/ui/requests/${encodeURIComponent(id)}`;

/** A form field given once as text; absent, repeated or not text is undefined. */
export function field(req: FastifyRequest, name: string): string | undefined {
  const body = req.body as Record<string, unknown> | null | undefined;
  const v = body && typeof body === 'object' ? body[name] : undefined;
  return typeof v === 'string' ? v : undefined;
}

export interface Problem {
  message: string;
  hint?: string | undefined;
}

/**
 * The service's refusal as the page says it: its message, and its hint unless the hint speaks of
 * the CLI's flags where the page has a box (a missing comment).
 */
export function problemOf(err: HttpError | SignInError): Problem {
  if (err instanceof HttpError && err.code === ErrorCode.CommentRequired) {
    return {
      message: err.message,
      hint: 'Write it in the Comment box, then choose again. Nothing was recorded.',
    };
  }
  return { message: err.message, hint: err.hint };
}

export class Pages {
  readonly base: string;
  readonly names: CookieNames;

  constructor(readonly deps: PagesDeps) {
    this.base = basePath(deps.publicUrl);
    this.names = cookieNames(deps.secure);
  }

  /** Renders a template inside the layout, with the signed-in person and a CSRF token. */
  render(
    reply: FastifyReply,
    status: number,
    template: string,
    title: string,
    data: Record<string, unknown> = {},
  ): FastifyReply {
    const session = reply.request.pageSession;
    const csrf = session ? reply.generateCsrf({ userInfo: session.idHash }) : null;
    const me = session ? (session.caller.name ?? session.caller.sub) : null;
    return reply
      .code(status)
      .header('content-type', 'text/html; charset=utf-8')
      .view(template, { base: this.base, title, me, csrf, problem: null, ...data });
  }

  message(
    reply: FastifyReply,
    status: number,
    heading: string,
    opts: {
      problem?: Problem;
      paragraphs?: string[];
      action?: { href: string; label: string };
    } = {},
  ): FastifyReply {
    return this.render(reply, status, 'message.eta', heading, { heading, ...opts });
  }

  /** The page a broker without a web client shows, saying what to configure. */
  unavailable(reply: FastifyReply): FastifyReply {
    return this.message(reply, 503, 'The review pages are not set up', {
      paragraphs: this.deps.unavailable,
    });
  }

  link(path: string): string {
    return `${this.base}${path}`;
  }

  /** Loads the session from its cookie (and sets `req.caller` for the request log line). */
  async session(req: FastifyRequest): Promise<'none' | 'expired' | PageSession> {
    const found = await this.deps.sessions.find(req.cookies[this.names.session]);
    if (found.kind !== 'valid') return found.kind;
    req.pageSession = found.session;
    req.caller = found.session.caller;
    return found.session;
  }

  /**
   * Sends the browser to the identity provider to sign in (or to sign in again, stronger, for a
   * step-up), after which it comes back to `returnTo`.
   */
  async toSignIn(reply: FastifyReply, returnTo: string, stepUp?: StepUpAsk): Promise<FastifyReply> {
    if (!this.deps.signIn) return this.unavailable(reply);
    let started: { location: string; cookie: string };
    try {
      started = await this.deps.signIn.begin(safeReturnTo(returnTo), stepUp);
    } catch (err) {
      if (err instanceof SignInError)
        return this.message(reply, err.status, 'Cannot sign in right now', {
          problem: problemOf(err),
        });
      throw err;
    }
    reply.setCookie(this.names.signIn, started.cookie, cookieOptions(this.deps.secure, 600));
    return reply.redirect(started.location, 303);
  }

  /** A GET page that needs a session: the session, or a redirect to sign in (and undefined). */
  async require(
    req: FastifyRequest,
    reply: FastifyReply,
    returnTo: string,
  ): Promise<PageSession | undefined> {
    if (!this.deps.signIn) {
      this.unavailable(reply);
      return undefined;
    }
    const s = await this.session(req);
    if (typeof s !== 'string') return s;
    await this.toSignIn(reply, returnTo);
    return undefined;
  }
}

/** The step-up an API refusal asks for (RFC 9470 challenge), if that is what it is. */
export function stepUpOf(err: unknown): StepUpAsk | undefined {
  if (!(err instanceof HttpError) || err.code !== ErrorCode.InsufficientUserAuthentication)
    return undefined;
  const challenge = parseStepUpChallenge(err.headers['www-authenticate']);
  if (!challenge?.acrValues) return undefined;
  return {
    acrValues: challenge.acrValues.split(/\s+/).filter(Boolean),
    maxAge: challenge.maxAge ?? 300,
  };
}
