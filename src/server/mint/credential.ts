import type { Identity } from '../../api/schemas.js';
import type { SigningKey } from './keys.js';
import { signBrokerJwt } from './sign.js';

/**
 * The credential a relying party receives: a JWT signed by the broker (docs/credentials.md). Its
 * header `typ` marks it as a jitctl credential (RFC 8725 §3.11 explicit typing) so it can never be
 * replayed as a sign-in token to this broker, and relying parties can refuse other JWTs from the
 * same issuer.
 */
export const CREDENTIAL_TYP = 'jitctl-credential+jwt';

export interface CredentialClaims {
  issuer: string;
  subject: string;
  /** The requester's identity provider (`sub` is unique only per issuer). */
  subjectIssuer: string;
  audience: string;
  role: string;
  requestId: string;
  /** Who approved, RFC 8693 `act`-shaped (`{iss, sub}`), in review order; empty when auto-approved. */
  approvers: Identity[];
  /** Seconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
}

export interface SignedCredential {
  token: string;
  jti: string;
}

export function signCredential(key: SigningKey, c: CredentialClaims): Promise<SignedCredential> {
  return signBrokerJwt(key, CREDENTIAL_TYP, c, {
    role: c.role,
    request_id: c.requestId,
    sub_iss: c.subjectIssuer,
    approvers: c.approvers.map((a) => ({ iss: a.iss, sub: a.sub })),
    // RFC 8693 §4.1: the approving party as an `act` claim (the first approver; all are in `approvers`).
    ...(c.approvers[0] ? { act: { iss: c.approvers[0].iss, sub: c.approvers[0].sub } } : {}),
  });
}
