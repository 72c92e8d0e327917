import * as oidc from 'openid-client';
import { isLoopbackHost } from '../api/loopback.js';
import { Secret } from '../api/secret.js';
import type { Env } from '../cli/context.js';
import { AuthError, JitError, UnreachableError, UsageError } from '../cli/errors.js';
import { safe } from '../cli/output.js';
import type { SessionRecord, StoredIdentity } from '../credentials/records.js';

/**
 * The OpenID Connect relying party half of jitctl (openid-client 6, a certified implementation):
 * discovery, ID token checks, and one translation of its errors into jitctl's (exit codes and
 * messages a person can act on). Loaded only by commands that sign in, refresh or step up.
 */

/** How to reach the identity provider, as the broker's `GET /v1/config` describes it. */
export interface IdpSettings {
  issuer: string;
  clientId: string;
  scopes: string[];
  /** Whether the device authorization grant is offered. */
  deviceFlow: boolean;
  /**
   * The acr values a first sign-in should reach (any one), so that the roles people request need
   * no second sign-in right after it; empty when the broker names none.
   */
  signInAcrValues?: string[];
}

export type TokenResponse = Awaited<ReturnType<typeof oidc.refreshTokenGrant>>;

/** openid-client's timeout for one request to the identity provider, in seconds. */
const REQUEST_TIMEOUT_S = 15;

/**
 * Discovery (OIDC Discovery 1.0) of `issuer` for the public client `clientId`. Plain http is
 * accepted for loopback issuers only (`jitctl server --dev`), as for brokers (src/cli/config.ts).
 * ID token signatures are checked against the provider's JWKS (`enableNonRepudiationChecks`),
 * on top of openid-client's iss, aud, exp, iat and nonce checks.
 */
export async function discover(
  env: Env,
  idp: Pick<IdpSettings, 'issuer' | 'clientId'>,
): Promise<oidc.Configuration> {
  let url: URL;
  try {
    url = new URL(idp.issuer);
  } catch {
    throw new JitError(
      `the broker names an identity provider that is not a URL: ${safe(idp.issuer)}`,
    );
  }
  const insecure = url.protocol === 'http:';
  if (insecure && !isLoopbackHost(url.hostname) && env.JITCTL_ALLOW_INSECURE_HTTP !== '1') {
    throw new UsageError(`refusing plain http to the identity provider ${url.href}`, {
      hint: 'the identity provider must use https (or set JITCTL_ALLOW_INSECURE_HTTP=1 on a test network)',
    });
  }
  try {
    const config = await oidc.discovery(url, idp.clientId, undefined, oidc.None(), {
      timeout: REQUEST_TIMEOUT_S,
      ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    config.timeout = REQUEST_TIMEOUT_S;
    oidc.enableNonRepudiationChecks(config);
    return config;
  } catch (err) {
    throw idpError(err, idp.issuer, 'discovery');
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Turns whatever openid-client (or fetch beneath it) threw into a JitError. Error descriptions
 * come from the provider, so they are shown through `safe()`; token values never appear in
 * openid-client's messages.
 */
export function idpError(err: unknown, issuer: string, step: string): JitError {
  if (err instanceof JitError) return err;
  const name = (err as { name?: unknown })?.name;
  if (name === 'TimeoutError') {
    return new UnreachableError(
      `the identity provider at ${issuer} did not answer in time (${step})`,
      {
        cause: err,
        hint: 'check your network, then run the command again',
      },
    );
  }
  const net = networkCode(err);
  if (net || (err instanceof TypeError && /fetch failed/i.test(err.message))) {
    return new UnreachableError(
      `cannot reach the identity provider at ${issuer}${net ? ` (${net})` : ''}`,
      {
        cause: err,
        hint: 'check that the broker and its identity provider are running and reachable',
      },
    );
  }
  if (err instanceof oidc.ResponseBodyError || err instanceof oidc.AuthorizationResponseError) {
    const described = err.error_description ? `: ${safe(err.error_description)}` : '';
    switch (err.error) {
      case 'access_denied':
        return new AuthError(
          `the sign-in was refused or cancelled at the identity provider${described}`,
          {
            cause: err,
            hint: 'run `jitctl login` to try again',
          },
        );
      case 'expired_token':
        return new AuthError('the sign-in code expired before the sign-in was completed', {
          cause: err,
          hint: 'run the command again and finish signing in before the code expires',
        });
      case 'invalid_grant':
        return new AuthError(
          `the identity provider refused the ${step} (invalid_grant${described})`,
          {
            cause: err,
          },
        );
      case 'unmet_authentication_requirements':
        return new AuthError(
          `the identity provider cannot sign you in as strongly as asked${described}`,
          {
            cause: err,
          },
        );
      default:
        return new AuthError(
          `the identity provider refused the ${step}: ${safe(err.error)}${described}`,
          {
            cause: err,
          },
        );
    }
  }
  if (err instanceof oidc.ClientError) {
    return new AuthError(
      `the identity provider's answer failed verification (${step}): ${err.message}`,
      {
        cause: err,
        hint: 'if this keeps happening, the broker or its identity provider is misconfigured',
      },
    );
  }
  return new JitError(
    `${step} with the identity provider failed: ${err instanceof Error ? err.message : String(err)}`,
    1,
    { cause: err },
  );
}

const isString = (v: unknown): v is string => typeof v === 'string';

/** The name a person knows themselves by: login name first (like gh), then display name. */
function displayName(claims: Record<string, unknown>): string | null {
  for (const key of ['preferred_username', 'name', 'email']) {
    const v = claims[key];
    if (isString(v) && v !== '') return v;
  }
  return null;
}

/**
 * A stored session from a token response. The ID token is what the broker accepts as a bearer
 * token (aud = the CLI's client id), so its expiry is the session's; openid-client has already
 * verified it (signature, iss, aud, exp, iat, and nonce where one was sent).
 */
export function sessionFromTokens(
  idp: Pick<IdpSettings, 'issuer' | 'clientId'>,
  tokens: TokenResponse,
  previousRefreshToken?: Secret | null,
): SessionRecord {
  const claims = tokens.claims() as Record<string, unknown> | undefined;
  if (!tokens.id_token || !claims) {
    throw new AuthError('the identity provider sent no ID token', {
      hint: 'the broker must list the `openid` scope in its OIDC settings',
    });
  }
  if (!isString(claims.sub) || typeof claims.exp !== 'number' || !isString(claims.iss)) {
    throw new AuthError('the identity provider sent an ID token without sub, iss or exp');
  }
  const groups = Array.isArray(claims.groups) ? claims.groups.filter(isString) : [];
  const identity: StoredIdentity = {
    iss: claims.iss,
    sub: claims.sub,
    name: displayName(claims),
    email: isString(claims.email) ? claims.email : null,
    groups,
  };
  const refresh = tokens.refresh_token
    ? new Secret(tokens.refresh_token)
    : (previousRefreshToken ?? null);
  return {
    kind: 'oidc',
    issuer: idp.issuer,
    clientId: idp.clientId,
    bearer: new Secret(tokens.id_token),
    refreshToken: refresh,
    expiresAt: claims.exp * 1000,
    identity,
    acr: isString(claims.acr) ? claims.acr : null,
    authTime: typeof claims.auth_time === 'number' ? claims.auth_time * 1000 : null,
  };
}

export { oidc };
