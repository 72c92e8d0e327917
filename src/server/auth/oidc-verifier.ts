import type { JWTPayload, ProtectedHeaderParameters } from 'jose';
import { ErrorCode } from '../../api/errors.js';
import type { ServerClock } from '../clock.js';
import { HttpError, unavailable } from '../errors.js';
import type { Caller } from '../policy/types.js';
import { RemoteIssuer } from './remote-issuer.js';
import { claimsFromTheFuture, foreignAuthorizedParty } from './token-checks.js';

/**
 * Verifies sign-in tokens from the configured OpenID Provider: the ID token the CLI got for its
 * client id, or a JWT access token whose audience is the broker (RFC 9068). The provider's
 * metadata and keys are found and cached by {@link RemoteIssuer}.
 */

/** Asymmetric algorithms only: HS* would let anyone holding the JWKS forge tokens, `none` anyone. */
export const LOGIN_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'PS256'];
/** Seconds of clock skew allowed between the identity provider and the broker. */
const CLOCK_TOLERANCE_S = 30;
/** `typ` values a login token may carry (RFC 7519 §5.1, RFC 9068 §2.1); absent is fine too. */
const LOGIN_TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);

export interface VerifiedToken {
  caller: Caller;
  /** When the token stops being valid (ms); the verification cache keeps it no longer. */
  expiresAt: number;
}

/**
 * A source of sign-in tokens. The broker picks the verifier whose `issuer` equals the token's
 * `iss`; issue #5 adds one for the broker's own session tokens from RFC 8693 token exchange.
 */
export interface TokenVerifier {
  readonly issuer: string;
  verify(token: string, header: ProtectedHeaderParameters): Promise<VerifiedToken>;
}

export interface OidcVerifierOptions {
  issuer: string;
  /** Accepted `aud` values: the CLI's client id (ID tokens) and the broker's audience (access tokens). */
  audiences: string[];
  /** The CLI's client id, which `azp` must name when a token has several audiences (default: audiences[0]). */
  clientId?: string;
  groupsClaim: string;
  clock: ServerClock;
  /** Kids of the broker's own signing keys: a token signed with one is never a sign-in token. */
  isOwnKid: (kid: string) => boolean;
  fetchTimeoutMs?: number;
  /** How soon after a JWKS fetch an unknown kid may trigger another (default 30 s). */
  jwksCooldownMs?: number;
}

export class OidcVerifier implements TokenVerifier {
  readonly issuer: string;
  readonly #opts: OidcVerifierOptions;
  readonly #remote: RemoteIssuer;

  constructor(opts: OidcVerifierOptions) {
    this.issuer = opts.issuer;
    this.#opts = opts;
    this.#remote = new RemoteIssuer(opts.issuer, {
      fetchTimeoutMs: opts.fetchTimeoutMs,
      jwksCooldownMs: opts.jwksCooldownMs,
      keyHolder: 'the identity provider',
      unreachable: (why) => this.#unreachable(why),
      invalid: invalidToken,
    });
  }

  /** The provider's discovery document (GET /v1/config reads `device_authorization_endpoint`). */
  async metadata(): Promise<Record<string, unknown>> {
    return (await this.#remote.keys()).metadata ?? {};
  }

  #unreachable(why: string): HttpError {
    return unavailable(
      `cannot reach the identity provider at ${this.issuer} to verify sign-ins (${why})`,
      'try again shortly; operators: check the broker can reach oidc_issuer',
    );
  }

  async verify(token: string, header: ProtectedHeaderParameters): Promise<VerifiedToken> {
    if (typeof header.kid === 'string' && this.#opts.isOwnKid(header.kid)) {
      throw invalidToken('a token signed by this broker is a credential, not a sign-in token');
    }
    if (header.typ !== undefined && !LOGIN_TYPES.has(String(header.typ).toLowerCase())) {
      throw invalidToken(`a token of type ${JSON.stringify(header.typ)} is not a sign-in token`);
    }
    if (typeof header.alg !== 'string' || !LOGIN_ALGORITHMS.includes(header.alg)) {
      throw invalidToken(
        `tokens signed with ${JSON.stringify(header.alg)} are not accepted (only ${LOGIN_ALGORITHMS.join(', ')})`,
      );
    }
    const payload = await this.#remote.verify(token, {
      issuer: this.issuer,
      audience: this.#opts.audiences,
      algorithms: LOGIN_ALGORITHMS,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(this.#opts.clock.now()),
      clockTolerance: CLOCK_TOLERANCE_S,
    });
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw invalidToken('the token has no subject');
    }
    const why =
      foreignAuthorizedParty(payload, this.#opts.clientId ?? this.#opts.audiences[0]!) ??
      claimsFromTheFuture(payload, this.#opts.clock.now(), CLOCK_TOLERANCE_S);
    if (why) throw invalidToken(why);
    return { caller: callerFrom(payload, this.#opts.groupsClaim), expiresAt: payload.exp! * 1000 };
  }
}

export function invalidToken(why: string): HttpError {
  return new HttpError(
    401,
    ErrorCode.Unauthenticated,
    `invalid sign-in token: ${why}`,
    'run `jitctl login`',
    {
      'www-authenticate': `Bearer error="invalid_token", error_description="${why.replace(/["\\]/g, "'")}"`,
    },
  );
}

/**
 * Identity from verified claims. `name` falls back to preferred_username; groups come from the
 * configured claim (an array, or one string). Email counts for `user:<email>` policy entries
 * unless the token says `email_verified: false`.
 */
export function callerFrom(payload: JWTPayload, groupsClaim: string): Caller {
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  const rawGroups = payload[groupsClaim];
  const groups = Array.isArray(rawGroups)
    ? rawGroups.filter((g): g is string => typeof g === 'string')
    : typeof rawGroups === 'string'
      ? [rawGroups]
      : [];
  return {
    iss: payload.iss!,
    sub: payload.sub!,
    name: str(payload.name) ?? str(payload.preferred_username),
    email: str(payload.email),
    emailVerified: payload.email_verified !== false,
    groups,
    acr: str(payload.acr),
    authTime:
      typeof payload.auth_time === 'number' && Number.isFinite(payload.auth_time)
        ? payload.auth_time
        : null,
  };
}
