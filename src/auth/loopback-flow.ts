import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatDuration, parseDuration } from '../api/duration.js';
import type { Context } from '../cli/context.js';
import { AuthError, JitError, UsageError } from '../cli/errors.js';
import { startProgress } from '../cli/progress.js';
import { type AuthorizationParams, type FlowOptions, interruption } from './device-flow.js';
import { idpError, oidc, type TokenResponse } from './oidc.js';

/**
 * Authorization code + PKCE (RFC 7636, S256) with a loopback redirect (RFC 8252 §7.3): a one-shot
 * HTTP listener on 127.0.0.1 at a port the OS picks, the system browser for the sign-in. Exactly
 * one callback is served; its `state` must match (CSRF, RFC 6749 §10.12) and its `iss` must be
 * the issuer (mix-up defence, RFC 9207) or the sign-in ends with nothing stored.
 */

const DEFAULT_TIMEOUT_MS = 5 * 60_000;
export const CALLBACK_PATH = '/callback';

function timeoutMs(ctx: Context): number {
  const v = ctx.env.JITCTL_LOGIN_TIMEOUT;
  if (!v) return DEFAULT_TIMEOUT_MS;
  try {
    return parseDuration(v);
  } catch (err) {
    throw new UsageError(`JITCTL_LOGIN_TIMEOUT: ${(err as Error).message}`);
  }
}

function page(title: string, message: string): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1d2430}</style>
</head><body><h1>${esc(title)}</h1><p>${esc(message)}</p></body></html>
`;
}

/** Resolves once the page is handed to the OS, so closing the listener cannot cut it off. */
function reply(res: ServerResponse, status: number, body: string): Promise<void> {
  const finished = new Promise<void>((resolve) => {
    res.once('finish', resolve);
    res.once('close', resolve);
  });
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'referrer-policy': 'no-referrer',
    connection: 'close',
  });
  res.end(body);
  return finished;
}

export async function browserFlow(
  ctx: Context,
  config: oidc.Configuration,
  issuer: string,
  params: AuthorizationParams,
  opts: FlowOptions,
): Promise<TokenResponse> {
  const limitMs = timeoutMs(ctx);
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
  } catch (err) {
    throw new JitError(
      `cannot listen on 127.0.0.1 for the browser's answer: ${(err as Error).message}`,
      1,
      { hint: 'use `jitctl login --device`', cause: err },
    );
  }
  const { port } = server.address() as AddressInfo;
  const redirectUri = `http://127.0.0.1:${port}${CALLBACK_PATH}`;
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const verifier = oidc.randomPKCECodeVerifier();
  const challenge = await oidc.calculatePKCECodeChallenge(verifier);
  const url = oidc.buildAuthorizationUrl(config, {
    ...params,
    redirect_uri: redirectUri,
    response_type: 'code',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).href;

  let settle!: (result: { tokens: TokenResponse } | { error: JitError }) => void;
  const outcome = new Promise<{ tokens: TokenResponse } | { error: JitError }>((resolve) => {
    settle = resolve;
  });
  let served = false;

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const current = new URL(req.url ?? '/', redirectUri);
    if (current.pathname !== CALLBACK_PATH || req.method !== 'GET') {
      await reply(res, 404, page('Not found', 'This address only receives the sign-in answer.'));
      return;
    }
    if (served) {
      await reply(
        res,
        410,
        page('Already used', 'This sign-in is finished. Return to the terminal.'),
      );
      return;
    }
    served = true;
    server.close();
    const q = current.searchParams;
    // Our own checks first, for messages a person can act on; openid-client repeats them.
    let error: JitError | undefined;
    if (q.get('state') !== state) {
      error = new AuthError(
        'the browser sign-in answer does not belong to this sign-in (state mismatch); nothing was stored',
        {
          hint: 'run `jitctl login` again; if it keeps happening, something is interfering with your browser',
        },
      );
    } else if (q.has('iss') && q.get('iss') !== issuer) {
      error = new AuthError(
        'the browser sign-in answer came from another identity provider (iss mismatch, RFC 9207); nothing was stored',
      );
    }
    if (error) {
      await reply(res, 400, page('Sign-in failed', `${error.message}. Return to the terminal.`));
      settle({ error });
      return;
    }
    try {
      const tokens = await oidc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        ...(params.max_age !== undefined ? { maxAge: Number(params.max_age) } : {}),
      });
      await reply(
        res,
        200,
        page(
          'Signed in',
          'jitctl is signed in. You can close this tab and return to the terminal.',
        ),
      );
      settle({ tokens });
    } catch (err) {
      const mapped = idpError(err, issuer, 'browser sign-in');
      await reply(res, 400, page('Sign-in failed', `${mapped.message}. Return to the terminal.`));
      settle({ error: mapped });
    }
  };
  server.on('request', (req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      if (!res.headersSent) void reply(res, 500, page('Sign-in failed', 'Return to the terminal.'));
      settle({ error: idpError(err, issuer, 'browser sign-in') });
    });
  });

  const io = ctx.io;
  const opened = opts.open ? await ctx.openBrowser(url) : false;
  if (opened) {
    io.err(
      `${opts.heading}, finish signing in in your browser.\nIf no browser page opened, open this URL on this machine:\n\n    ${url}\n\n`,
    );
  } else {
    io.err(`${opts.heading}, open this URL in a browser on this machine:\n\n    ${url}\n\n`);
  }
  const progress = await startProgress(
    io,
    `Waiting for the browser sign-in (up to ${formatDuration(limitMs)})`,
  );

  const interrupt = ctx.interruptSignal();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    const result = await Promise.race([
      outcome,
      new Promise<{ error: JitError }>((resolve) => {
        timer = setTimeout(
          () =>
            resolve({
              error: new AuthError(`no answer from the browser within ${formatDuration(limitMs)}`, {
                hint: 'run `jitctl login` again, or `jitctl login --device` to sign in on another device',
              }),
            }),
          limitMs,
        );
        onAbort = () => resolve({ error: interruption(interrupt) });
        if (interrupt.aborted) onAbort();
        else interrupt.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    if ('error' in result) throw result.error;
    progress.stop();
    return result.tokens;
  } catch (err) {
    progress.stop();
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
    if (onAbort) interrupt.removeEventListener('abort', onAbort);
    server.close();
    server.closeAllConnections();
  }
}
