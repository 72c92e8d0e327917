import { errors, type JWTPayload, jwtVerify, type ProtectedHeaderParameters } from 'jose';
import { invalidToken, type TokenVerifier, type VerifiedToken } from '../auth/oidc-verifier.js';
import type { ServerClock } from '../clock.js';
import { type KeyRing, SIGNING_ALGS, type SigningKey } from '../mint/keys.js';
import { signBrokerJwt } from '../mint/sign.js';
import type { Caller } from '../policy/types.js';
import type { TrustedIssuer } from './config.js';

/**
 * The broker's own session tokens, issued by token exchange (RFC 8693) to pipelines and accepted
 * as bearer tokens by the rest of the API. They are signed with the credential key but can never
 * pass for a credential, nor a credential for one (RFC 8725 §3.11, explicit typing): a distinct
 * `typ` (`jitctl-session+jwt`), and `aud` = the broker itself, which no role's credential
 * audience may equal (checked at start). Relying parties that ignore `typ` still refuse a session
 * token by its audience.
 */
export const SESSION_TYP = 'jitctl-session+jwt';

export interface SessionClaims {
  /** The broker's public URL: both `iss` and `aud`. */
  broker: string;
  subject: string;
  /** The entry's name: the workload's display name and the `trusted_issuer` claim. */
  entry: string;
  groups: string[];
  acr: string | null;
  /** Seconds since the epoch (the external token's `iat`). */
  authTime: number | null;
  /** Who vouched: the external token's issuer and subject. */
  sourceIssuer: string;
  sourceSubject: string;
  issuedAt: number;
  expiresAt: number;
}

export function signSessionToken(
  key: SigningKey,
  c: SessionClaims,
): Promise<{ token: string; jti: string }> {
  return signBrokerJwt(
    key,
    SESSION_TYP,
    {
      issuer: c.broker,
      subject: c.subject,
      audience: c.broker,
      issuedAt: c.issuedAt,
      expiresAt: c.expiresAt,
    },
    {
      name: c.entry,
      groups: c.groups,
      ...(c.acr !== null ? { acr: c.acr } : {}),
      ...(c.authTime !== null ? { auth_time: c.authTime } : {}),
      trusted_issuer: c.entry,
      src_iss: c.sourceIssuer,
      src_sub: c.sourceSubject,
    },
  );
}

export interface SessionVerifierOptions {
  publicUrl: string;
  keys: KeyRing;
  clock: ServerClock;
  /** The current trusted issuers: a session from an entry that was removed is refused. */
  entries: TrustedIssuer[];
}

/** The bearer-token verifier for session tokens (the Authenticator picks it by `iss`). */
export class SessionTokenVerifier implements TokenVerifier {
  readonly issuer: string;
  readonly #opts: SessionVerifierOptions;

  constructor(opts: SessionVerifierOptions) {
    this.issuer = opts.publicUrl;
    this.#opts = opts;
  }

  async verify(token: string, header: ProtectedHeaderParameters): Promise<VerifiedToken> {
    if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== SESSION_TYP)
      throw invalidToken('a token from this broker that is not a session token cannot sign in');
    // The key ring of the moment: keys rotate while the broker runs, and a retired key's sessions
    // are refused.
    const key =
      typeof header.kid === 'string' ? await this.#opts.keys.publicKey(header.kid) : undefined;
    if (!key)
      throw invalidToken('the session token is signed with a key this broker does not have');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        issuer: this.issuer,
        audience: this.issuer,
        typ: SESSION_TYP,
        algorithms: [...SIGNING_ALGS],
        requiredClaims: ['exp', 'sub', 'iat', 'jti'],
        currentDate: new Date(this.#opts.clock.now()),
        clockTolerance: 30,
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired)
        throw invalidToken(
          'the pipeline session has expired; run `jitctl login --federated-token` again',
        );
      if (err instanceof errors.JWSSignatureVerificationFailed)
        throw invalidToken('the session token signature does not verify');
      throw invalidToken('the session token is malformed or not for this broker');
    }
    const entry = this.#opts.entries.find(
      (e) => e.name === payload.trusted_issuer && e.issuer === payload.src_iss,
    );
    if (!entry) {
      throw invalidToken(
        `the trusted issuer this session came from (${JSON.stringify(payload.trusted_issuer)}) is no longer trusted by this broker`,
      );
    }
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
    const groups = Array.isArray(payload.groups)
      ? payload.groups.filter((g): g is string => typeof g === 'string')
      : [];
    const caller: Caller = {
      iss: this.issuer,
      sub: payload.sub!,
      name: str(payload.name),
      email: null,
      emailVerified: false,
      groups,
      acr: str(payload.acr),
      authTime: typeof payload.auth_time === 'number' ? payload.auth_time : null,
      workload: { issuer: entry.issuer, entry: entry.name },
    };
    return { caller, expiresAt: payload.exp! * 1000 };
  }
}
