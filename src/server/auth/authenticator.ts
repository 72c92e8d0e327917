import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, type ProtectedHeaderParameters } from 'jose';
import { ErrorCode } from '../../api/errors.js';
import type { ServerClock } from '../clock.js';
import { HttpError } from '../errors.js';
import { CREDENTIAL_TYP } from '../mint/credential.js';
import type { Caller } from '../policy/types.js';
import { invalidToken, type TokenVerifier } from './oidc-verifier.js';
import { criticalHeader, nonCanonicalJws } from './token-checks.js';

/**
 * Turns an `Authorization: Bearer …` header into the caller. The token's `iss` picks the verifier
 * (today the OpenID Provider's; issue #5 adds the broker's own session tokens). Verified tokens are
 * cached by SHA-256 until they expire, so a CLI polling or a benchmark hammering the API pays
 * signature verification once per token, not per request. Failures are never cached.
 */
export interface AuthenticatorOptions {
  verifiers: TokenVerifier[];
  clock: ServerClock;
  /** The broker's own issuer URL (credentials it mints carry it). */
  publicUrl: string;
  cacheSize?: number;
  /**
   * Told of each caller whose token was just verified (not of cache hits): the people directory
   * records sign-ins from here. Must return at once and not throw.
   */
  onVerified?: (caller: Caller) => void;
}

/** Longest bearer token we look at; real ID tokens are a few KB. */
const MAX_TOKEN_LENGTH = 16 * 1024;

export class Authenticator {
  readonly #byIssuer = new Map<string, TokenVerifier>();
  readonly #cache = new Map<string, { caller: Caller; expiresAt: number }>();
  readonly #opts: AuthenticatorOptions;

  constructor(opts: AuthenticatorOptions) {
    this.#opts = opts;
    for (const v of opts.verifiers) this.#byIssuer.set(v.issuer, v);
  }

  async authenticate(authorization: string | undefined): Promise<Caller> {
    if (!authorization) {
      throw new HttpError(
        401,
        ErrorCode.Unauthenticated,
        'sign in first: this needs a bearer token',
        'run `jitctl login`',
        { 'www-authenticate': 'Bearer realm="jitctl"' },
      );
    }
    const m = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!m) throw invalidToken('the Authorization header must be "Bearer <token>"');
    const token = m[1]!;
    if (token.length > MAX_TOKEN_LENGTH) throw invalidToken('the token is too long');

    // A hit is these exact bytes, which passed every check below when they were verified: the
    // shape checks (a decode and re-encode of the whole token) run only for tokens not seen yet.
    const key = createHash('sha256').update(token).digest('base64url');
    const now = this.#opts.clock.now();
    const hit = this.#cache.get(key);
    if (hit) {
      this.#cache.delete(key);
      if (hit.expiresAt > now) {
        this.#cache.set(key, hit);
        return hit.caller;
      }
    }

    const shape = nonCanonicalJws(token);
    if (shape) throw invalidToken(shape);
    if (!/^[A-Za-z0-9_.~+/-]+=*$/.test(token))
      throw invalidToken('the Authorization header must be "Bearer <token>"');

    let header: ProtectedHeaderParameters;
    let iss: unknown;
    try {
      header = decodeProtectedHeader(token);
      iss = decodeJwt(token).iss;
    } catch {
      throw invalidToken('the token is not a JWT');
    }
    const crit = criticalHeader(header);
    if (crit) throw invalidToken(crit);
    if (typeof header.typ === 'string' && header.typ.toLowerCase() === CREDENTIAL_TYP) {
      throw invalidToken('this is a jitctl credential for other systems, not a sign-in token');
    }
    const verifier = typeof iss === 'string' ? this.#byIssuer.get(iss) : undefined;
    if (!verifier) {
      if (iss === this.#opts.publicUrl)
        throw invalidToken('this is a jitctl credential for other systems, not a sign-in token');
      throw invalidToken(
        `the token was issued by ${JSON.stringify(iss)}, which this broker does not trust`,
      );
    }
    const verified = await verifier.verify(token, header);
    // A verifier must answer for its own issuer only.
    if (verified.caller.iss !== verifier.issuer) throw invalidToken('issuer mismatch');
    this.#remember(key, verified.caller, verified.expiresAt);
    try {
      this.#opts.onVerified?.(verified.caller);
    } catch {}
    return verified.caller;
  }

  #remember(key: string, caller: Caller, expiresAt: number): void {
    const max = this.#opts.cacheSize ?? 10_000;
    while (this.#cache.size >= max) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    this.#cache.set(key, { caller, expiresAt });
  }
}
