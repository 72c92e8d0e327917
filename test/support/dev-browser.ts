import { request } from 'undici';
import { currentTotp } from '../../src/server/dev/users.js';

/**
 * A person with a browser, played over plain HTTP: a cookie jar, redirects followed, and the
 * development identity provider's forms filled in and submitted (its pages work without
 * JavaScript for exactly this). Used by the login tests, by the request/approve tests, and by the
 * scripted tour.
 *
 *   const url = deviceLoginUrl(cli.stderr());          // what jitctl printed
 *   await completeDeviceLogin(url, { username: 'alice', password, totpSecret }, { mfa: true });
 */

export interface Person {
  username: string;
  password: string;
  /** Base32 TOTP secret; the current code is computed when one is given. */
  totpSecret?: string;
}

export interface PersonOptions {
  /** Give the one-time code (for `acr: "mfa"`). Default: true when the person has a TOTP secret. */
  mfa?: boolean;
  /** Give exactly this one-time code instead of computing it (e.g. a wrong one). */
  code?: string;
  /** Reuse one browser across sign-ins (its IdP session cookie): pass the same jar. */
  jar?: CookieJar;
  /** Press Cancel instead of going on: at the device confirmation page, or at the sign-in form. */
  cancelAt?: 'confirm' | 'login';
  /** Give up after this many pages (default 20). */
  maxSteps?: number;
  /** Called with each step (method, URL path, status): handy when a test fails. */
  trace?: (line: string) => void;
}

export interface BrowserResult {
  /** The last URL loaded. */
  url: string;
  status: number;
  /** The last page's text, tags stripped. */
  text: string;
  /** The last page's HTML. */
  html: string;
  /** Whether the sign-in form was shown and filled in (false when a session cookie sufficed). */
  signedIn: boolean;
}

/** An error the provider showed on a page (wrong password, a code needed, an expired code…). */
export class PageError extends Error {
  override name = 'PageError';
  constructor(
    message: string,
    readonly url: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface Cookie {
  name: string;
  value: string;
  path: string;
  expires: number | undefined;
}

/** A cookie jar for one host (the broker's), path-aware, honouring Max-Age and Expires. */
export class CookieJar {
  #cookies = new Map<string, Cookie>();

  header(url: URL): string {
    const now = Date.now();
    const out: string[] = [];
    for (const [k, c] of this.#cookies) {
      if (c.expires !== undefined && c.expires <= now) {
        this.#cookies.delete(k);
        continue;
      }
      const p = c.path.endsWith('/') ? c.path : `${c.path}/`;
      if (url.pathname === c.path || url.pathname.startsWith(p)) out.push(`${c.name}=${c.value}`);
    }
    return out.join('; ');
  }

  store(url: URL, setCookie: string | string[] | undefined): void {
    for (const line of ([] as string[]).concat(setCookie ?? [])) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq <= 0) continue;
      const cookie: Cookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        path: url.pathname.replace(/\/[^/]*$/, '') || '/',
        expires: undefined,
      };
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=').map((s) => s.trim());
        const key = k?.toLowerCase();
        if (key === 'path' && v.startsWith('/')) cookie.path = v;
        if (key === 'max-age') cookie.expires = Date.now() + Number(v) * 1000;
        if (key === 'expires' && cookie.expires === undefined) cookie.expires = Date.parse(v);
      }
      const id = `${cookie.name}\u0000${cookie.path}`;
      if (cookie.value === '' || (cookie.expires !== undefined && cookie.expires <= Date.now())) {
        this.#cookies.delete(id);
      } else {
        this.#cookies.set(id, cookie);
      }
    }
  }

  get size(): number {
    return this.#cookies.size;
  }

  /** Every cookie value held (to look for them where they must not be, such as files). */
  values(): string[] {
    return [...this.#cookies.values()].map((c) => c.value);
  }
}

interface Page {
  url: URL;
  status: number;
  location: string | undefined;
  body: string;
}

async function load(
  jar: CookieJar,
  url: URL,
  init: { method?: 'GET' | 'POST'; form?: URLSearchParams; origin?: string } = {},
): Promise<Page> {
  const headers: Record<string, string> = { 'user-agent': 'jitctl-test-person/1' };
  // What a browser names as the page a form was sent from (the review pages check it).
  if (init.origin) headers.origin = init.origin;
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await request(url, {
    method: init.method ?? 'GET',
    headers,
    body: init.form?.toString(),
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  jar.store(url, res.headers['set-cookie']);
  const body = await res.body.text();
  const location = res.headers.location;
  return {
    url,
    status: res.statusCode,
    location: Array.isArray(location) ? location[0] : location,
    body,
  };
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  '#39': "'",
  '#96': '`',
  '#x27': "'",
};
function decodeEntities(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39|#96|#x27);/g, (_, e: string) => ENTITIES[e] ?? '');
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
  return m ? decodeEntities(m[1]!) : undefined;
}

export function pageText(body: string): string {
  return decodeEntities(
    body
      .replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  );
}

interface Form {
  action: URL;
  method: string;
  fields: Array<{ name: string; value: string; type: string }>;
  buttons: Array<{ name: string | undefined; value: string; label: string }>;
}

function parseForms(page: Page): Form[] {
  const forms: Form[] = [];
  for (const m of page.body.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const open = m[1] ?? '';
    const inner = m[2] ?? '';
    const fields = [...inner.matchAll(/<input\b[^>]*>/gi)].map((t) => ({
      name: attr(t[0], 'name') ?? '',
      value: attr(t[0], 'value') ?? '',
      type: (attr(t[0], 'type') ?? 'text').toLowerCase(),
    }));
    const buttons = [...inner.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)].map((b) => ({
      name: attr(b[1] ?? '', 'name'),
      value: attr(b[1] ?? '', 'value') ?? '',
      label: pageText(b[2] ?? ''),
    }));
    forms.push({
      action: new URL(attr(open, 'action') ?? page.url.href, page.url),
      method: (attr(open, 'method') ?? 'get').toLowerCase(),
      fields: fields.filter((f) => f.name !== ''),
      buttons,
    });
  }
  return forms;
}

function errorOn(page: Page): string | undefined {
  const m = /<(p|div)[^>]*class="error"[^>]*>([\s\S]*?)<\/\1>/i.exec(page.body);
  return m ? pageText(m[2] ?? '') : undefined;
}

function codeFor(person: Person, opts: PersonOptions): string {
  if (opts.code !== undefined) return opts.code;
  const mfa = opts.mfa ?? person.totpSecret !== undefined;
  if (!mfa) return '';
  if (!person.totpSecret) throw new Error(`${person.username} has no TOTP secret to give`);
  return currentTotp({ username: person.username, totpSecret: person.totpSecret });
}

/**
 * Walks pages from `start` like a browser until `done(page)` says so: follows redirects, fills
 * the sign-in form, confirms device codes, submits auto-submit forms.
 */
async function walk(
  start: URL,
  person: Person,
  opts: PersonOptions,
  done: (page: Page, jar: CookieJar) => Promise<Page | undefined>,
): Promise<BrowserResult> {
  const jar = opts.jar ?? new CookieJar();
  const trace = opts.trace ?? (() => {});
  let page = await load(jar, start);
  let signedIn = false;
  let submittedLogin = false;
  for (let step = 0; step < (opts.maxSteps ?? 20); step++) {
    trace(`${page.status} ${page.url.pathname}${page.url.search}`);
    const finished = await done(page, jar);
    if (finished) {
      return {
        url: finished.url.href,
        status: finished.status,
        text: pageText(finished.body),
        html: finished.body,
        signedIn,
      };
    }
    if (page.status >= 300 && page.status < 400 && page.location) {
      page = await load(jar, new URL(page.location, page.url));
      continue;
    }
    const error = errorOn(page);
    const forms = parseForms(page);
    const login = forms.find((f) => f.fields.some((x) => x.name === 'password'));
    if (login) {
      if (submittedLogin && error) throw new PageError(error, page.url.href, page.status);
      const form = new URLSearchParams();
      for (const f of login.fields) if (f.type === 'hidden') form.set(f.name, f.value);
      if (opts.cancelAt === 'login') {
        form.set('action', 'abort');
      } else {
        form.set('username', person.username);
        form.set('password', person.password);
        form.set('otp', codeFor(person, opts));
        form.set('action', 'login');
      }
      submittedLogin = true;
      signedIn = opts.cancelAt !== 'login';
      page = await load(jar, login.action, { method: 'POST', form });
      continue;
    }
    if (error) throw new PageError(error, page.url.href, page.status);
    const form = forms.find((f) => f.method === 'post');
    if (!form) {
      throw new PageError(
        `stuck at ${page.url.pathname} (HTTP ${page.status}): ${pageText(page.body).slice(0, 300)}`,
        page.url.href,
        page.status,
      );
    }
    const body = new URLSearchParams();
    for (const f of form.fields) body.set(f.name, f.value);
    const isConfirm = form.fields.some((f) => f.name === 'confirm');
    if (isConfirm && opts.cancelAt === 'confirm') {
      body.set('abort', 'yes');
    } else {
      // Press the form's first named button (the page's primary action), if it has one.
      const primary = form.buttons.find((b) => b.name);
      if (primary?.name && !isConfirm) body.set(primary.name, primary.value);
    }
    page = await load(jar, form.action, { method: 'POST', form: body });
  }
  throw new PageError(`no end after ${opts.maxSteps ?? 20} pages`, page.url.href, page.status);
}

/**
 * Completes a device sign-in (RFC 8628) at `verificationUriComplete`: confirm the code, sign in
 * (with the one-time code unless `mfa: false`), until the provider says "Signed in". Throws a
 * {@link PageError} with the provider's message if it refuses (wrong password, code needed…).
 */
export async function completeDeviceLogin(
  verificationUriComplete: string,
  person: Person,
  opts: PersonOptions = {},
): Promise<BrowserResult> {
  return walk(new URL(verificationUriComplete), person, opts, async (page) => {
    if (page.status !== 200) return undefined;
    if (/<h1>Signed in<\/h1>/.test(page.body)) return page;
    if (/Sign-in cancelled/.test(page.body)) return page;
    return undefined;
  });
}

/**
 * Completes a browser sign-in (authorization code flow) started at `authorizationUrl`, up to
 * the redirect to the CLI's loopback port, which it then loads so the CLI receives the answer.
 * Returns the CLI's page. `rewriteCallback` lets a test tamper with the redirect (wrong state).
 */
export async function completeAuthorizationRequest(
  authorizationUrl: string,
  person: Person,
  opts: PersonOptions & { rewriteCallback?: (url: URL) => URL } = {},
): Promise<BrowserResult> {
  const idp = new URL(authorizationUrl);
  return walk(idp, person, opts, async (page, jar) => {
    if (!(page.status >= 300 && page.status < 400 && page.location)) return undefined;
    const next = new URL(page.location, page.url);
    if (next.origin === idp.origin) return undefined;
    const target = opts.rewriteCallback ? opts.rewriteCallback(next) : next;
    return load(jar, target);
  });
}

/** The `verification_uri_complete` jitctl printed (its device sign-in instructions). */
export function deviceLoginUrl(output: string): string | undefined {
  const m = /(https?:\/\/[^\s'"<>]+[?&]user_code=[A-Za-z0-9-]+)/.exec(output);
  return m?.[1];
}

/** The authorization URL jitctl printed for a browser sign-in (with --no-open). */
export function authorizationUrl(output: string): string | undefined {
  const m = /(https?:\/\/[^\s'"<>]+\/auth\?[^\s'"<>]+)/.exec(output);
  return m?.[1];
}

/**
 * Opens a page of the broker's review pages (`/ui/…`) as a person with a browser: when there is
 * no session the broker sends them to the identity provider, where the form is filled in (with
 * the one-time code when `mfa`), and back. Ends at the first page under `/ui/` that is not a
 * redirect. Pass `jar` to keep the browser's cookies (the session) for later requests.
 */
export async function openReviewPage(
  url: string,
  person: Person,
  opts: PersonOptions = {},
): Promise<BrowserResult> {
  return walk(new URL(url), person, opts, async (page) => {
    const redirect = page.status >= 300 && page.status < 400;
    return !redirect && page.url.pathname.startsWith('/ui/') ? page : undefined;
  });
}

/**
 * Reviews a request on the broker's review page as a person with a browser: opens the link
 * (signing in, with the one-time code only if `mfa`), writes the comment, presses Approve or
 * Deny; when the broker wants a fresh MFA sign-in for that, signs in again with the code and
 * presses the confirmation. Returns the request's page afterwards, and whether a step-up happened.
 */
export async function reviewInBrowser(
  link: string,
  person: Person,
  decision: 'approve' | 'deny',
  opts: PersonOptions & { comment?: string } = {},
): Promise<BrowserResult & { steppedUp: boolean }> {
  const jar = opts.jar ?? new CookieJar();
  let shown = await openReviewPage(link, person, { ...opts, jar });
  let steppedUp = false;
  for (let round = 0; round < 2; round++) {
    const url = new URL(shown.url);
    const form = parseForms({
      url,
      status: shown.status,
      location: undefined,
      body: shown.html,
    }).find((f) => f.action.pathname.endsWith('/review'));
    if (!form)
      throw new PageError(`no review form: ${shown.text.slice(0, 300)}`, shown.url, shown.status);
    const body = new URLSearchParams();
    for (const f of form.fields) if (f.type === 'hidden') body.set(f.name, f.value);
    body.set('comment', opts.comment ?? '');
    body.set('decision', decision);
    const answer = await load(jar, form.action, { method: 'POST', form: body, origin: url.origin });
    const next = answer.location ? new URL(answer.location, answer.url) : undefined;
    if (answer.status !== 303 || !next) {
      throw new PageError(pageText(answer.body).slice(0, 300), answer.url.href, answer.status);
    }
    if (next.origin === url.origin && next.pathname.startsWith('/ui/')) {
      const done = await load(jar, next);
      return {
        url: done.url.href,
        status: done.status,
        text: pageText(done.body),
        html: done.body,
        signedIn: shown.signedIn,
        steppedUp,
      };
    }
    // A step-up: sign in again with the one-time code, then confirm on the page shown again.
    shown = await openReviewPage(next.href, person, { ...opts, jar, mfa: true });
    steppedUp = true;
  }
  throw new PageError('the page kept asking for a fresh sign-in', shown.url, shown.status);
}
