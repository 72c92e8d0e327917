import { KeyObject, randomBytes, sign } from 'node:crypto';
import type { CryptoKey, JWTPayload } from 'jose';
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

/** The node:crypto form of each signing key, converted once. */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();

function keyObjectOf(key: SigningKey): KeyObject {
  let ko = keyObjects.get(key.privateKey);
  if (!ko) {
    ko = KeyObject.from(key.privateKey);
    keyObjects.set(key.privateKey, ko);
  }
  return ko;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Signs a JWT with the broker's key: explicit `typ` (RFC 8725 §3.11) so each kind of token the
 * broker issues (credentials, pipeline sessions) can be told apart and never used as another,
 * `kid` for relying parties' key lookup, and a random `jti`.
 *
 * The compact JWS (RFC 7515 §7.1) is assembled here and signed synchronously with node:crypto:
 * ES256 as the raw 64-byte R‖S that JWS requires (RFC 7518 §3.4, `ieee-p1363`), EdDSA over the
 * signing input as is (RFC 8037 §3.1). jose's SignJWT signs through WebCrypto, which runs each
 * signature as a thread-pool job; minting signs inside the write transaction, so every credential
 * held the database (SQLite's single connection, PostgreSQL's audit head lock) across a trip
 * through the thread pool and back to a busy event loop, which capped mints at the event loop's
 * turn rate. A P-256 signature takes about 0.05 ms on the spot.
 */
export async function signBrokerJwt(
  key: SigningKey,
  typ: string,
  registered: RegisteredClaims,
  claims: JWTPayload,
): Promise<{ token: string; jti: string }> {
  const jti = randomBytes(16).toString('base64url');
  const payload: JWTPayload = {
    ...claims,
    iss: registered.issuer,
    sub: registered.subject,
    aud: registered.audience,
    jti,
    iat: registered.issuedAt,
    nbf: registered.issuedAt,
    exp: registered.expiresAt,
  };
  const input = `${b64({ alg: key.alg, kid: key.kid, typ })}.${b64(payload)}`;
  const data = Buffer.from(input);
  const signature =
    key.alg === 'ES256'
      ? sign('sha256', data, { key: keyObjectOf(key), dsaEncoding: 'ieee-p1363' })
      : sign(null, data, keyObjectOf(key));
  return { token: `${input}.${signature.toString('base64url')}`, jti };
}
