import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';
import { criticalHeader, nonCanonicalJws } from '../auth/token-checks.js';
import { CREDENTIAL_TYP } from '../mint/credential.js';
import { type KeyRing, SIGNING_ALGS } from '../mint/keys.js';

/**
 * Verifying a credential the broker itself minted, for the broker's own doors that take one: its
 * holder asking after its grant (`POST /v1/credential/status`) and a resource server asking
 * whether it is active (`POST /v1/introspect`). jose checks the signature against the key ring of
 * the moment (a retired key's credentials no longer verify), the issuer, the pinned algorithms and
 * the explicit type; the audience is not checked: it names the relying party, not the broker.
 */

/** Longest token looked at; credentials are about 1 KB. */
export const MAX_CREDENTIAL_LENGTH = 16 * 1024;

export interface VerifiedCredential {
  jti: string;
  requestId: string;
  role: string;
  sub: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  kid: string;
  /** Its `exp` has passed (only when the caller accepts expired ones). */
  expired: boolean;
  payload: JWTPayload;
}

/** Why a token is not a credential of this broker; said to its holder, never to a third party. */
export class CredentialTokenError extends Error {
  override name = 'CredentialTokenError';
}

export interface CredentialVerifierDeps {
  keys: KeyRing;
  publicUrl: string;
  now(): number;
}

/**
 * Verifies `token` as one of this broker's credentials. With `allowExpired`, a credential whose
 * `exp` has passed still verifies (marked `expired`): its holder may ask after the grant it came
 * from, which outlives it when the role's `credential.ttl` is shorter than the window.
 */
export async function verifyCredential(
  deps: CredentialVerifierDeps,
  token: string,
  opts: { allowExpired: boolean },
): Promise<VerifiedCredential> {
  if (token.length > MAX_CREDENTIAL_LENGTH) throw new CredentialTokenError('the token is too long');
  const shape = nonCanonicalJws(token);
  if (shape) throw new CredentialTokenError(shape);
  let header: ProtectedHeaderParameters;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw new CredentialTokenError('the token is not a JWT');
  }
  const crit = criticalHeader(header);
  if (crit) throw new CredentialTokenError(crit);
  if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== CREDENTIAL_TYP)
    throw new CredentialTokenError('the token is not a jitctl credential');
  const key = typeof header.kid === 'string' ? await deps.keys.publicKey(header.kid) : undefined;
  if (!key) throw new CredentialTokenError('the token is not signed with a key of this broker');
  const now = deps.now();
  const exp = typeof unverified.exp === 'number' ? unverified.exp : undefined;
  const expired = exp !== undefined && exp * 1000 <= now;
  // An expired credential the caller accepts is checked as of just before its expiry; its
  // signature, issuer and type are checked all the same.
  const asOf = expired && opts.allowExpired ? exp! * 1000 - 1000 : now;
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      issuer: deps.publicUrl,
      typ: CREDENTIAL_TYP,
      algorithms: [...SIGNING_ALGS],
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'aud'],
      currentDate: new Date(asOf),
      // The broker's own clock signed it: no skew to forgive.
      clockTolerance: 0,
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new CredentialTokenError('the credential expired');
    if (err instanceof errors.JWSSignatureVerificationFailed)
      throw new CredentialTokenError('the signature does not verify');
    throw new CredentialTokenError('the token is malformed or not from this broker');
  }
  const requestId = payload.request_id;
  const role = payload.role;
  if (typeof requestId !== 'string' || typeof role !== 'string')
    throw new CredentialTokenError('the credential names no request');
  return {
    jti: payload.jti!,
    requestId,
    role,
    sub: payload.sub!,
    iat: payload.iat!,
    exp: payload.exp!,
    kid: header.kid!,
    expired,
    payload,
  };
}
