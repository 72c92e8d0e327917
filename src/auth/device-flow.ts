import { formatDuration } from '../api/duration.js';
import type { Context } from '../cli/context.js';
import { AuthError, InterruptedError } from '../cli/errors.js';
import { safe, style } from '../cli/output.js';
import { startProgress } from '../cli/progress.js';
import { idpError, oidc, type TokenResponse } from './oidc.js';

/**
 * The OAuth 2.0 device authorization grant (RFC 8628): for SSH sessions, CI, and machines
 * without a browser. The code and URL go to stderr, a browser is opened where there is one, and
 * polling follows the provider's `interval` and `slow_down` (openid-client adds 5 s per
 * slow_down, §3.5) until the person finishes, refuses, or the code expires.
 */

export interface AuthorizationParams {
  scope: string;
  /** The claims parameter (OIDC Core §5.5), e.g. an essential acr for step-up. */
  claims?: string;
  /** Seconds since the last active authentication the caller accepts (OIDC Core §3.1.2.1). */
  max_age?: string;
  login_hint?: string;
}

export interface FlowOptions {
  /** Open a browser (false: only print the URL). */
  open: boolean;
  /** First line of the instructions, e.g. "To sign in to https://jit.example.com". */
  heading: string;
}

/**
 * RFC 8628 §5.4 (remote phishing): a compromised or misconfigured provider could send people to
 * a look-alike site. The pages must be the issuer's own, or nothing of them is shown or opened.
 */
export function checkVerificationUris(
  issuer: string,
  response: { verification_uri: string; verification_uri_complete?: string | undefined },
): void {
  const origin = new URL(issuer).origin;
  for (const uri of [response.verification_uri, response.verification_uri_complete]) {
    if (uri === undefined) continue;
    let same = false;
    try {
      const u = new URL(uri);
      same = u.origin === origin && (u.protocol === 'https:' || u.protocol === 'http:');
    } catch {
      same = false;
    }
    if (!same) {
      throw new AuthError(
        `the identity provider at ${issuer} sent a sign-in page on another site; refusing to show or open it`,
        {
          hint: 'this points to a misconfigured or compromised identity provider: tell whoever runs the broker',
        },
      );
    }
  }
}

/** The error for an interrupt that fired: its own InterruptedError (Ctrl-C), or a plain one. */
export function interruption(interrupt: AbortSignal): InterruptedError {
  return interrupt.reason instanceof InterruptedError ? interrupt.reason : new InterruptedError();
}

export async function deviceFlow(
  ctx: Context,
  config: oidc.Configuration,
  issuer: string,
  params: AuthorizationParams,
  opts: FlowOptions,
): Promise<TokenResponse> {
  let response: Awaited<ReturnType<typeof oidc.initiateDeviceAuthorization>>;
  try {
    response = await oidc.initiateDeviceAuthorization(config, { ...params });
  } catch (err) {
    throw idpError(err, issuer, 'device authorization');
  }
  checkVerificationUris(issuer, response);
  const code = safe(response.user_code);
  // Canonical form (URL parsing percent-encodes anything a terminal could interpret).
  const page = new URL(response.verification_uri_complete ?? response.verification_uri).href;
  const expiresMs = response.expires_in * 1000;

  const opened = opts.open ? await ctx.openBrowser(page) : false;
  const io = ctx.io;
  const lines = [
    `${opts.heading}, open this page in a browser (on this or any device):`,
    '',
    `    ${page}`,
    '',
  ];
  if (!response.verification_uri_complete)
    lines.push(`and enter the code ${style(io, 'bold', code)}`);
  else lines.push(`and check that it shows the code ${style(io, 'bold', code)}`);
  if (opened) lines.push('(a browser was opened at that page)');
  io.err(`${lines.join('\n')}\n\n`);

  const progress = await startProgress(
    io,
    `Waiting for the sign-in to finish (the code expires in ${formatDuration(expiresMs)})`,
  );
  // The poll ends at the code's expiry (plus slack for the provider's own expired_token) or at
  // Ctrl-C, whichever comes first.
  const interrupt = ctx.interruptSignal();
  const expiry = AbortSignal.timeout(expiresMs + 5_000);
  const signal = AbortSignal.any([interrupt, expiry]);
  try {
    const tokens = await oidc.pollDeviceAuthorizationGrant(config, response, undefined, { signal });
    progress.stop();
    return tokens;
  } catch (err) {
    // openid-client wraps an abort in its own error; which signal fired tells what happened.
    const mapped = interrupt.aborted
      ? interruption(interrupt)
      : expiry.aborted
        ? new AuthError('the sign-in code expired before the sign-in was completed', {
            hint: 'run the command again and finish signing in before the code expires',
          })
        : idpError(err, issuer, 'device sign-in');
    progress.stop();
    throw mapped;
  }
}
