import type { JWTPayload, ProtectedHeaderParameters } from 'jose';

/**
 * Checks every token from outside gets beyond jose's signature and claim checks, shared by
 * sign-in tokens (the Authenticator, the OpenID Provider's verifier) and pipelines' subject
 * tokens (token exchange). Each returns why the token is refused, or null; callers wrap the
 * reason in their own error (a 401, or OAuth's invalid_grant).
 */

const PARTS = ['header', 'payload', 'signature'] as const;

/**
 * A compact JWS is three segments of unpadded base64url (RFC 7515 §2, §7.1). Node's base64url
 * decoder (which jose uses on Node 20) forgives padding and non-zero unused bits, so one token
 * could be written many ways, each verifying; a token is accepted only in its one canonical form.
 */
export function nonCanonicalJws(token: string): string | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null; // "not a JWT" is for the caller's decoding to say
  for (const [i, part] of parts.entries()) {
    const name = PARTS[i]!;
    if (part.includes('=')) {
      return `the token's ${name} is padded with "="; JWTs use unpadded base64url (RFC 7515 §2)`;
    }
    if (!/^[A-Za-z0-9_-]*$/.test(part)) {
      return `the token's ${name} holds characters outside base64url (RFC 7515 §2)`;
    }
    if (part.length % 4 === 1 || Buffer.from(part, 'base64url').toString('base64url') !== part) {
      return `the token's ${name} is not canonical base64url (its unused trailing bits are not zero)`;
    }
  }
  return null;
}

/**
 * `crit` lists header extensions a verifier must understand or refuse (RFC 7515 §4.1.11). The
 * broker implements none, so a token that has one is refused, saying so rather than something
 * vaguer.
 */
export function criticalHeader(header: ProtectedHeaderParameters): string | null {
  if (header.crit === undefined) return null;
  const names = Array.isArray(header.crit)
    ? header.crit.map((c) => JSON.stringify(c).slice(0, 80)).join(', ')
    : 'a malformed list';
  return `the token's header marks extensions as critical (crit: ${names}), which this broker does not support`;
}

/**
 * `iat` and `auth_time` later than now (beyond `toleranceSeconds` of clock skew): jose checks
 * `iat` only when a maximum age is asked for, and a sign-in dated in the future would count as
 * fresh for step-up until that time came.
 */
export function claimsFromTheFuture(
  payload: JWTPayload,
  nowMs: number,
  toleranceSeconds: number,
): string | null {
  const limit = nowMs / 1000 + toleranceSeconds;
  if (typeof payload.iat === 'number' && payload.iat > limit)
    return 'the token was issued in the future (iat); check the clocks of the identity provider and the broker';
  const authTime = payload.auth_time;
  if (typeof authTime === 'number' && authTime > limit)
    return 'the token says you signed in in the future (auth_time); check the clocks of the identity provider and the broker';
  return null;
}

/**
 * OpenID Connect Core §3.1.3.7: an ID token with several audiences must name the client it was
 * issued to in `azp`. A token whose audiences include this broker's client alongside others, and
 * that was issued to some other client, is not a sign-in to this broker.
 */
export function foreignAuthorizedParty(payload: JWTPayload, clientId: string): string | null {
  if (!Array.isArray(payload.aud) || payload.aud.length <= 1) return null;
  if (payload.azp === clientId) return null;
  return payload.azp === undefined
    ? `the token has several audiences and no authorized party (azp); it must name this broker's client ${JSON.stringify(clientId)}`
    : `the token has several audiences and was issued to another client (azp ${JSON.stringify(String(payload.azp).slice(0, 100))})`;
}
