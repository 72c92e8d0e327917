import { randomBytes } from 'node:crypto';
import { type JWTPayload, SignJWT } from 'jose';
import type { SigningKey } from './keys.js';

/** The registered claims every token the broker signs carries (RFC 7519 §4.1). */
export interface RegisteredClaims {
  issuer: string;
  subject: string;
  audience: string;
  /** Seconds since the epoch; also the `nbf`. */
  issuedAt: number;
  expiresAt: number;
}

/**
 * Signs a JWT with the broker's key: explicit `typ` (RFC 8725 §3.11) so each kind of token the
 * broker issues (credentials, pipeline sessions) can be told apart and never used as another,
 * `kid` for relying parties' key lookup, and a random `jti`.
 */
export async function signBrokerJwt(
  key: SigningKey,
  typ: string,
  registered: RegisteredClaims,
  claims: JWTPayload,
): Promise<{ token: string; jti: string }> {
  const jti = randomBytes(16).toString('base64url');
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ })
    .setIssuer(registered.issuer)
    .setSubject(registered.subject)
    .setAudience(registered.audience)
    .setJti(jti)
    .setIssuedAt(registered.issuedAt)
    .setNotBefore(registered.issuedAt)
    .setExpirationTime(registered.expiresAt)
    .sign(key.privateKey);
  return { token, jti };
}
