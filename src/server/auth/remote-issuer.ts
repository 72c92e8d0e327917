import {
  createRemoteJWKSet,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose';

/**
 * An OpenID issuer's signing keys, as a relying party finds them: the discovery document
 * (OpenID Connect Discovery 1.0 §4; it must name the issuer it was fetched for, §4.3) and jose's
 * remote JWKS, which refetches when a token names an unknown kid, after a cooldown so a flood of
 * bogus kids cannot make the broker hammer the issuer. Fetched on first use and cached; a failure
 * is remembered for a second so a down issuer is not asked again by every request. Used for the
 * sign-in provider (auth/oidc-verifier.ts) and for pipelines' trusted issuers (federation/), which
 * share {@link RemoteIssuer.verify}'s reading of jose's failures as the token's fault or the issuer's.
 */
export interface RemoteIssuerOptions {
  /** Skip discovery and use these keys (a trusted issuer's configured `jwks_uri`). */
  jwksUri?: string | undefined;
  fetchTimeoutMs?: number | undefined;
  /** How soon after a JWKS fetch an unknown kid may trigger another (default 30 s). */
  jwksCooldownMs?: number | undefined;
  /** The caller's error for "cannot reach the issuer" (a 503, or OAuth's temporarily_unavailable). */
  unreachable(why: string): Error;
  /** The caller's error for "the token is at fault" (a 401, or OAuth's invalid_grant). */
  invalid(why: string): Error;
  /** Who publishes the keys, in messages (default: the issuer URL). */
  keyHolder?: string | undefined;
}

/** Messages for jose's claim failures, by claim. */
const CLAIM_FAILURES: Record<string, string> = {
  aud: 'the token is meant for another audience, not this broker',
  iss: 'the token comes from another issuer',
  nbf: 'the token is not valid yet (nbf)',
  iat: 'the token was issued in the future (iat)',
};

export interface IssuerKeys {
  jwks: JWTVerifyGetKey;
  /** The discovery document; null when `jwksUri` was configured instead. */
  metadata: Record<string, unknown> | null;
}

export class RemoteIssuer {
  readonly #opts: RemoteIssuerOptions;
  #keys: Promise<IssuerKeys> | undefined;
  #failedAt = 0;

  constructor(
    readonly issuer: string,
    opts: RemoteIssuerOptions,
  ) {
    this.#opts = opts;
  }

  keys(): Promise<IssuerKeys> {
    if (this.#keys) return this.#keys;
    if (Date.now() - this.#failedAt < 1000) {
      return Promise.reject(this.#opts.unreachable('it failed a moment ago'));
    }
    const p = this.#load();
    this.#keys = p;
    p.catch(() => {
      this.#keys = undefined;
      this.#failedAt = Date.now();
    });
    return p;
  }

  /** `jwtVerify` with the issuer's keys; a failure is the caller's `invalid` or `unreachable` error. */
  async verify(token: string, options: JWTVerifyOptions): Promise<JWTPayload> {
    const { jwks } = await this.keys();
    try {
      return (await jwtVerify(token, jwks, options)).payload;
    } catch (err) {
      throw this.#failure(err);
    }
  }

  #failure(err: unknown): Error {
    const { invalid, unreachable } = this.#opts;
    const holder = this.#opts.keyHolder ?? this.issuer;
    if (err instanceof errors.JWTExpired) return invalid('the token has expired');
    if (err instanceof errors.JWTClaimValidationFailed)
      return invalid(
        CLAIM_FAILURES[err.claim] ?? `the token's "${err.claim}" claim is missing or invalid`,
      );
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported)
      return invalid('the token is signed with an algorithm this broker does not accept');
    if (err instanceof errors.JWSSignatureVerificationFailed)
      return invalid(`the token's signature does not verify with the keys of ${holder}`);
    if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
      return invalid(`the token is signed with a key ${holder} does not publish`);
    if (err instanceof errors.JWKSTimeout) return unreachable('fetching its keys timed out');
    if (err instanceof errors.JWKSInvalid) return unreachable('its key set is not a valid JWKS');
    // jose reports a JWKS answering other than 200 with JSON as a bare JOSEError: the issuer's fault.
    if (err instanceof errors.JOSEError && err.code === errors.JOSEError.code)
      return unreachable(err.message);
    if (err instanceof errors.JOSEError) return invalid('the token is malformed');
    // fetch() failing while loading the JWKS: the issuer is down, the token may well be fine.
    return unreachable(err instanceof Error ? err.message : String(err));
  }

  async #load(): Promise<IssuerKeys> {
    const timeout = this.#opts.fetchTimeoutMs ?? 5_000;
    const unreachable = this.#opts.unreachable;
    let metadata: Record<string, unknown> | null = null;
    let uri = this.#opts.jwksUri;
    if (uri === undefined) {
      const url = `${this.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      try {
        const res = await fetch(url, {
          signal: AbortSignal.timeout(timeout),
          redirect: 'error',
          headers: { accept: 'application/json' },
        });
        if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
        metadata = (await res.json()) as Record<string, unknown>;
      } catch (err) {
        throw unreachable((err as Error).message);
      }
      if (typeof metadata !== 'object' || metadata === null || metadata.issuer !== this.issuer) {
        const named = (metadata as { issuer?: unknown } | null)?.issuer;
        throw unreachable(
          `its discovery document names issuer ${JSON.stringify(named)}, not ${JSON.stringify(this.issuer)}`,
        );
      }
      if (typeof metadata.jwks_uri !== 'string')
        throw unreachable('its discovery document has no jwks_uri');
      uri = metadata.jwks_uri;
    }
    let parsed: URL;
    try {
      parsed = new URL(uri);
    } catch {
      throw unreachable(`its jwks_uri ${JSON.stringify(uri)} is not a URL`);
    }
    const jwks = createRemoteJWKSet(parsed, {
      timeoutDuration: timeout,
      cooldownDuration: this.#opts.jwksCooldownMs ?? 30_000,
      cacheMaxAge: 10 * 60_000,
    });
    return { jwks, metadata };
  }
}
