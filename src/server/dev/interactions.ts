import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InteractionDetails, Provider } from 'oidc-provider';
import { errorPage, loginPage, messagePage, PAGE_HEADERS } from './pages.js';
import type { DevUser } from './types.js';
import { checkPassword, checkTotp } from './users.js';

/**
 * The sign-in step of the development identity provider (oidc-provider's "interactions"): one
 * form with username, password and an optional one-time code. A valid code gives `acr: "mfa"`,
 * password alone `acr: "pwd"`; when the relying party marks `mfa` essential through the claims
 * parameter (how jitctl asks for step-up, RFC 9470 §4), the form insists on the code.
 */

/** acr values this provider can reach, weakest first (the broker orders them the same way). */
export const ACR_LEVELS = ['pwd', 'mfa'] as const;
export type Acr = (typeof ACR_LEVELS)[number];

export const AMR: Record<Acr, string[]> = {
  pwd: ['pwd'],
  mfa: ['pwd', 'otp', 'mfa'],
};

/** Form bodies are tiny; anything bigger is not a person typing. */
const MAX_FORM_BYTES = 8 * 1024;

export interface SignInEvent {
  outcome: 'success' | 'failure' | 'cancelled';
  username: string;
  acr?: Acr;
  reason?: string;
}

export interface InteractionDeps {
  provider: Provider;
  users: readonly DevUser[];
  clientName: string;
  /** Display names by client id (the CLI, the review pages); `clientName` for any other. */
  clientNames?: Readonly<Record<string, string>>;
  /** `/idp` (the issuer's path): interaction URLs live under `${prefix}/interaction/:uid`. */
  prefix: string;
  onSignIn(event: SignInEvent): void;
}

/** Which acr values would satisfy the request: undefined when it does not insist on any. */
export function essentialAcrs(params: Record<string, unknown>): string[] | undefined {
  if (typeof params.claims !== 'string') return undefined;
  try {
    const claims = JSON.parse(params.claims) as {
      id_token?: { acr?: { essential?: boolean; values?: unknown; value?: unknown } };
    };
    const acr = claims.id_token?.acr;
    if (!acr?.essential) return undefined;
    if (Array.isArray(acr.values))
      return acr.values.filter((v): v is string => typeof v === 'string');
    if (typeof acr.value === 'string') return [acr.value];
    return undefined;
  } catch {
    return undefined;
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { ...PAGE_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

class FormTooLarge extends Error {}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  // A broker that parsed the body already (a framework's body parser) leaves it on req.body.
  const parsed = (req as { body?: unknown }).body;
  if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) {
    return new URLSearchParams(parsed.toString());
  }
  if (parsed && typeof parsed === 'object') {
    const out = new URLSearchParams();
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out.set(k, v);
    return out;
  }
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim();
  if (type !== 'application/x-www-form-urlencoded') return new URLSearchParams();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new FormTooLarge();
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginHint(details: InteractionDetails): string {
  const hint = details.params.login_hint;
  if (typeof hint === 'string' && hint.length <= 64) return hint;
  return details.session?.accountId ?? '';
}

/**
 * Serves `GET|POST ${prefix}/interaction/:uid`. Returns false when the path is not an interaction
 * path (the caller then hands the request to oidc-provider).
 */
export async function handleInteraction(
  deps: InteractionDeps,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<boolean> {
  const m = /^\/interaction\/([A-Za-z0-9_-]{1,64})\/?$/.exec(path);
  if (!m) return false;
  const uid = m[1]!;
  if (req.method !== 'GET' && req.method !== 'POST') {
    res.writeHead(405, { allow: 'GET, POST' }).end();
    return true;
  }
  let details: InteractionDetails;
  try {
    details = await deps.provider.interactionDetails(req, res);
  } catch {
    send(
      res,
      400,
      messagePage(
        'Sign-in expired',
        'This sign-in page is no longer valid (it expired, or was opened in another browser). Return to the terminal and run the command again.',
      ),
    );
    return true;
  }
  if (details.uid !== uid) {
    send(res, 400, messagePage('Sign-in mismatch', 'This page belongs to another sign-in.'));
    return true;
  }

  if (details.prompt.name === 'consent') {
    // The CLI is the broker's own first-party client: consent is implied (docs/login.md).
    const grantId = await grantEverything(deps, details);
    await deps.provider.interactionFinished(req, res, { consent: { grantId } });
    return true;
  }
  if (details.prompt.name !== 'login') {
    send(res, 400, errorPage({ error: `unexpected step ${details.prompt.name}` }));
    return true;
  }

  const wanted = essentialAcrs(details.params);
  const reachable = wanted?.filter((v): v is Acr => (ACR_LEVELS as readonly string[]).includes(v));
  if (wanted && reachable?.length === 0) {
    await deps.provider.interactionFinished(
      req,
      res,
      {
        error: 'unmet_authentication_requirements',
        error_description: `this provider offers acr ${ACR_LEVELS.join(' or ')}, not ${wanted.join(' or ')}`,
      },
      { mergeWithLastSubmission: false },
    );
    return true;
  }
  const codeRequired = reachable !== undefined && !reachable.includes('pwd');
  const page = (username: string, error?: string) =>
    loginPage({
      action: `${deps.prefix}/interaction/${uid}`,
      clientName: deps.clientNames?.[String(details.params.client_id)] ?? deps.clientName,
      username,
      error,
      codeRequired,
      again: Boolean(details.session?.accountId),
    });

  if (req.method === 'GET') {
    send(res, 200, page(loginHint(details)));
    return true;
  }

  let form: URLSearchParams;
  try {
    form = await readForm(req);
  } catch (err) {
    if (err instanceof FormTooLarge) {
      send(res, 413, messagePage('Too large', 'That form was far too large.'));
      return true;
    }
    throw err;
  }
  const username = (form.get('username') ?? '').trim().toLowerCase().slice(0, 64);
  // What people type as a username is logged only when it names a user: a password typed into
  // the wrong field must not end up in the broker's log.
  const known = deps.users.find(
    (u) => u.username === username || u.email.toLowerCase() === username,
  );
  const logName = known?.username ?? '(unknown user)';

  if (form.get('action') === 'abort') {
    deps.onSignIn({ outcome: 'cancelled', username: logName });
    await deps.provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'the person cancelled the sign-in' },
      { mergeWithLastSubmission: false },
    );
    return true;
  }

  const password = form.get('password') ?? '';
  const otp = (form.get('otp') ?? '').trim();
  const checked = checkPassword(deps.users, username, password);
  if (!checked.ok) {
    deps.onSignIn({ outcome: 'failure', username: logName, reason: 'wrong username or password' });
    send(res, 401, page(username, 'Wrong username or password.'));
    return true;
  }
  let acr: Acr = 'pwd';
  if (otp !== '') {
    if (!checkTotp(checked.user, otp)) {
      deps.onSignIn({ outcome: 'failure', username: logName, reason: 'wrong one-time code' });
      send(res, 401, page(username, 'That one-time code is not valid. Use the current code.'));
      return true;
    }
    acr = 'mfa';
  }
  if (codeRequired && acr !== 'mfa') {
    deps.onSignIn({ outcome: 'failure', username: logName, reason: 'one-time code needed' });
    send(
      res,
      401,
      page(username, 'This step needs your one-time code (MFA): enter it with your password.'),
    );
    return true;
  }
  deps.onSignIn({ outcome: 'success', username: checked.user.username, acr });
  await deps.provider.interactionFinished(
    req,
    res,
    { login: { accountId: checked.user.username, acr, amr: AMR[acr], remember: true } },
    { mergeWithLastSubmission: false },
  );
  return true;
}

async function grantEverything(
  deps: InteractionDeps,
  details: InteractionDetails,
): Promise<string> {
  const accountId = details.session?.accountId;
  if (!accountId) throw new Error('consent without a signed-in account');
  const clientId = String(details.params.client_id);
  const grant = details.grantId
    ? ((await deps.provider.Grant.find(details.grantId)) ??
      new deps.provider.Grant({ accountId, clientId }))
    : new deps.provider.Grant({ accountId, clientId });
  const d = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  return grant.save();
}
