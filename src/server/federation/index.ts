import type { FastifyBaseLogger } from 'fastify';
import { appendAudit } from '../audit/log.js';
import type { ServerClock } from '../clock.js';
import { AuditAppendError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { KeyRing } from '../mint/keys.js';
import type { Db } from '../store/database.js';
import type { TrustedIssuer } from './config.js';
import { OAuthError } from './errors.js';
import { ExternalTokenVerifier } from './external-token.js';
import { SessionTokenVerifier, signSessionToken } from './session-token.js';

export type { TrustedIssuer } from './config.js';
export { OAuthError } from './errors.js';
export { SESSION_TYP, SessionTokenVerifier } from './session-token.js';

/**
 * Federated login for pipelines (RFC 8693 token exchange): a CI platform's OIDC token, verified
 * against a `trusted_issuers` entry, becomes a short-lived broker session for a workload
 * identity, which then goes through the same policy as a person (`group:ci-deployers`,
 * `user:<subject>`). Every exchange is audited (`session.exchanged`: issuer, subject, entry,
 * never a token) in its own transaction, and the session is only handed out once the audit
 * event has committed (fail closed, like every other change).
 */

/** Sessions shorter than this are not worth issuing: the next call would find them expired. */
const MIN_SESSION_MS = 5_000;

export interface FederationOptions {
  entries: TrustedIssuer[];
  publicUrl: string;
  keys: KeyRing;
  clock: ServerClock;
  db: Db;
  metrics: Metrics;
  fetchTimeoutMs?: number;
  jwksCooldownMs?: number;
}

export interface ExchangedSession {
  token: string;
  /** Whole seconds until it expires (RFC 8693 §2.2.1 `expires_in`). */
  expiresIn: number;
  subject: string;
  entry: string;
}

export class Federation {
  readonly #opts: FederationOptions;
  readonly #external: ExternalTokenVerifier;
  /** The bearer-token verifier for the sessions this issues (for the Authenticator). */
  readonly sessionVerifier: SessionTokenVerifier;

  constructor(opts: FederationOptions) {
    this.#opts = opts;
    this.#external = new ExternalTokenVerifier({
      entries: opts.entries,
      publicUrl: opts.publicUrl,
      isOwnKid: opts.keys.isOwnKid,
      now: () => opts.clock.now(),
      ...(opts.fetchTimeoutMs !== undefined ? { fetchTimeoutMs: opts.fetchTimeoutMs } : {}),
      ...(opts.jwksCooldownMs !== undefined ? { jwksCooldownMs: opts.jwksCooldownMs } : {}),
    });
    this.sessionVerifier = new SessionTokenVerifier({
      publicUrl: opts.publicUrl,
      keys: opts.keys,
      clock: opts.clock,
      entries: opts.entries,
    });
  }

  get enabled(): boolean {
    return this.#external.enabled;
  }

  /**
   * Verifies an external token against the trusted issuers without exchanging it: for resource
   * servers that sign in to the revocation doors with their own token (docs/credentials.md).
   * Throws OAuthError like the exchange does.
   */
  verifyExternal(token: string): Promise<{ entry: string; subject: string }> {
    return this.#external.verify(token).then((v) => ({ entry: v.entry.name, subject: v.subject }));
  }

  /** Whether `issuer` is one of the trusted issuers. */
  trusts(issuer: string): boolean {
    return this.#opts.entries.some((e) => e.issuer === issuer);
  }

  /** Verifies `subjectToken`, audits the exchange and returns the broker session token. */
  async exchange(
    subjectToken: string,
    log: Pick<FastifyBaseLogger, 'info' | 'error'>,
  ): Promise<ExchangedSession> {
    if (!this.enabled) {
      throw new OAuthError(
        'unsupported_grant_type',
        'this broker trusts no pipeline issuers (trusted_issuers is empty), so it does no token exchange',
      );
    }
    const { entry, payload, subject } = await this.#external.verify(subjectToken);
    const now = this.#opts.clock.now();
    const issuedAt = Math.floor(now / 1000);
    // Never longer than the external token itself would have lasted.
    const expiresAt = Math.floor(
      Math.min(now + entry.sessionTtlMs, (payload.exp as number) * 1000) / 1000,
    );
    if (expiresAt * 1000 - now < MIN_SESSION_MS) {
      throw new OAuthError(
        'invalid_grant',
        'the token expires within seconds; get a fresh one from the CI platform',
      );
    }
    const authTime =
      entry.acr === null
        ? null
        : typeof payload.iat === 'number'
          ? Math.min(payload.iat, issuedAt)
          : issuedAt;
    const key = this.#opts.keys.current;
    const signed = await signSessionToken(key, {
      broker: this.#opts.publicUrl,
      subject,
      entry: entry.name,
      groups: entry.groups,
      acr: entry.acr,
      authTime,
      sourceIssuer: entry.issuer,
      sourceSubject: payload.sub as string,
      issuedAt,
      expiresAt,
    });
    const { db, metrics } = this.#opts;
    try {
      await db.transaction((tx) =>
        appendAudit(tx, db.dialect, now, [
          {
            type: 'session.exchanged',
            request_id: null,
            actor: { iss: this.#opts.publicUrl, sub: subject, name: entry.name },
            data: {
              issuer: entry.issuer,
              subject: payload.sub,
              trusted_issuer: entry.name,
              groups: entry.groups,
              ...(entry.acr !== null ? { acr: entry.acr } : {}),
              ...(typeof payload.jti === 'string'
                ? { subject_jti: payload.jti.slice(0, 200) }
                : {}),
              jti: signed.jti,
              // Which key signed it: a key leaves the JWKS only after its sessions expired.
              kid: key.kid,
              exp: new Date(expiresAt * 1000).toISOString(),
            },
          },
        ]),
      );
    } catch (err) {
      if (err instanceof AuditAppendError) metrics.auditFailures.inc();
      log.error({ err }, 'token exchange: the audit log could not record it; no session issued');
      throw new OAuthError(
        'temporarily_unavailable',
        'the audit log cannot record this sign-in, so no session was issued; try again later',
      );
    }
    metrics.auditAppends.inc({ type: 'session.exchanged' });
    log.info(
      { exchange: { trusted_issuer: entry.name, issuer: entry.issuer, subject, jti: signed.jti } },
      'pipeline session issued',
    );
    return { token: signed.token, expiresIn: expiresAt - issuedAt, subject, entry: entry.name };
  }
}
