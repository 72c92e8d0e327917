import { readFile } from 'node:fs/promises';
import {
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { docPath } from '../api/docs.js';
import { Secret } from '../api/secret.js';
import type { Context } from '../cli/context.js';
import { ApiError, AuthError, JitError, UsageError } from '../cli/errors.js';
import { safe } from '../cli/output.js';
import type { SessionRecord } from '../credentials/records.js';
import { withAnonymousClient } from './broker-config.js';

/**
 * Federated login for pipelines: the CI platform's OIDC token (GitHub Actions, GitLab CI, …) is
 * exchanged at the broker (RFC 8693, `POST /v1/token`) for a short-lived broker session, a
 * SessionRecord of `kind: 'federated'`. It cannot be refreshed: when it ends, the pipeline
 * exchanges a token again. The token comes from a file, stdin, or `JITCTL_FEDERATED_TOKEN`,
 * never from the command line, where every process on the runner could read it (`ps`).
 *
 * With `JITCTL_FEDERATED_TOKEN` set, every command signs in with it by itself ({@link
 * ambientSession}): the session lives in that process's memory only, so a job needs no login
 * step and no credential store, like cloud SDKs with a web identity token in the environment.
 */

export const FEDERATED_TOKEN_ENV = 'JITCTL_FEDERATED_TOKEN';
/** CI platforms' tokens are 1–2 KB; the broker refuses anything over 16 KiB anyway. */
const MAX_TOKEN_BYTES = 16 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The token and where it came from (for messages: never the token itself). */
export interface FederatedToken {
  token: Secret;
  from: string;
}

async function readStdin(ctx: Context): Promise<string> {
  if (ctx.io.stdinIsTTY) {
    throw new UsageError('--federated-token -: stdin is a terminal, not a token', {
      hint: 'pipe the token in, e.g. `printf %s "$CI_JOB_JWT" | jitctl login --federated-token -`',
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.io.stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > MAX_TOKEN_BYTES)
      throw new UsageError(
        `--federated-token -: stdin holds more than ${MAX_TOKEN_BYTES} bytes, which is no OIDC token`,
      );
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The token from `--federated-token FILE|-`, or from JITCTL_FEDERATED_TOKEN when the flag is
 * absent. A flag value that is itself a JWT is refused: it was typed where every process sees it.
 */
export async function readFederatedToken(
  ctx: Context,
  flag: string | undefined,
): Promise<FederatedToken> {
  let text: string;
  let from: string;
  if (flag === undefined) {
    const env = ctx.env[FEDERATED_TOKEN_ENV];
    if (env === undefined || env.trim() === '')
      throw new UsageError(`${FEDERATED_TOKEN_ENV} is empty`, {
        hint: 'set it to the CI platform’s OIDC token, or pass --federated-token FILE|-',
      });
    text = env;
    from = FEDERATED_TOKEN_ENV;
  } else if (flag === '-') {
    text = await readStdin(ctx);
    from = 'stdin';
  } else if (JWT_SHAPE.test(flag.trim()) && flag.trim().startsWith('eyJ')) {
    throw new UsageError('--federated-token takes a file (or - for stdin), not the token itself', {
      hint: `a token on the command line is visible to every process on this machine; pipe it: printf %s "$TOKEN" | jitctl login --federated-token - (or set ${FEDERATED_TOKEN_ENV})`,
    });
  } else {
    from = flag;
    try {
      const buf = await readFile(flag);
      if (buf.length > MAX_TOKEN_BYTES)
        throw new UsageError(
          `--federated-token ${safe(flag)}: the file is over ${MAX_TOKEN_BYTES} bytes, which is no OIDC token`,
        );
      text = buf.toString('utf8');
    } catch (err) {
      if (err instanceof JitError) throw err;
      throw new UsageError(
        `--federated-token ${safe(flag)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        {
          hint: 'give the file the CI platform wrote the token to, or - to read it from stdin',
        },
      );
    }
  }
  const token = text.trim();
  if (token === '') throw new UsageError(`the federated token from ${safe(from)} is empty`);
  if (!JWT_SHAPE.test(token)) {
    throw new UsageError(`the federated token from ${safe(from)} is not a JWT`, {
      hint: 'it should be the CI platform’s OIDC ID token (three base64url parts separated by dots)',
    });
  }
  return { token: new Secret(token), from };
}

/** The unverified header and claims of the broker's session token (the broker verifies it). */
function sessionParts(
  token: string,
): { header: ProtectedHeaderParameters; claims: JWTPayload } | undefined {
  try {
    return { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch {
    return undefined;
  }
}

const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);

/**
 * Exchanges `token` at `server` for a broker session. The session token is the broker's own,
 * for the broker: the CLI reads its claims to show who it is and when it ends, and the broker
 * verifies it on every call.
 */
export async function exchangeFederatedToken(
  ctx: Context,
  server: string,
  token: FederatedToken,
): Promise<SessionRecord> {
  const started = ctx.clock.now();
  const answer = await withAnonymousClient(ctx, server, (client) =>
    client.exchangeToken(token.token),
  ).catch((err: unknown) => {
    throw exchangeError(err, server, token.from);
  });
  const parts = sessionParts(answer.access_token);
  const sub = parts?.claims.sub;
  if (parts?.header.typ !== 'jitctl-session+jwt' || typeof sub !== 'string') {
    throw new JitError(
      `the broker at ${server} answered the token exchange with something that is not a jitctl session`,
      1,
      {
        hint: 'is --server the URL of a jitctl broker?',
      },
    );
  }
  const { claims } = parts;
  const byExp = typeof claims.exp === 'number' ? claims.exp * 1000 : Number.POSITIVE_INFINITY;
  const expiresAt = Math.min(started + answer.expires_in * 1000, byExp);
  const groups = Array.isArray(claims.groups)
    ? claims.groups.filter((g): g is string => typeof g === 'string')
    : [];
  const issuer = str(claims.iss) ?? server;
  return {
    kind: 'federated',
    issuer,
    clientId: str(claims.trusted_issuer) ?? '',
    bearer: new Secret(answer.access_token),
    refreshToken: null,
    expiresAt,
    identity: { iss: issuer, sub, name: str(claims.name), email: null, groups },
    acr: str(claims.acr),
    authTime: typeof claims.auth_time === 'number' ? claims.auth_time * 1000 : null,
  };
}

/** The broker's refusals (exit 4: this token does not sign in) with the broker's reason. */
function exchangeError(err: unknown, server: string, from: string): unknown {
  if (!(err instanceof ApiError)) return err;
  if (err.code === 'unsupported_grant_type') {
    return new JitError(
      `the broker at ${server} does not take pipeline tokens: ${err.message}`,
      1,
      {
        hint: `its operators must list your CI platform in trusted_issuers (${docPath('pipelines.md')})`,
      },
    );
  }
  if (err.status >= 400 && err.status < 500) {
    return new AuthError(
      `the broker refused the federated token from ${safe(from)}: ${err.message}`,
      {
        hint: `check the token’s audience and the claims the broker’s trusted_issuers entry requires (${docPath('pipelines.md')})`,
      },
    );
  }
  return err;
}

/** The session `JITCTL_FEDERATED_TOKEN` signs in to, held in memory only (never stored). */
export async function ambientSession(ctx: Context, server: string): Promise<SessionRecord> {
  return exchangeFederatedToken(ctx, server, await readFederatedToken(ctx, undefined));
}

/** A federated session that ended: exchange a token again (there is no refresh token). */
export function federatedSessionExpired(server: string): AuthError {
  return new AuthError(`the pipeline session with ${server} has expired`, {
    hint: `run \`jitctl login --federated-token\` again with a fresh token from the CI platform (or set ${FEDERATED_TOKEN_ENV})`,
  });
}
