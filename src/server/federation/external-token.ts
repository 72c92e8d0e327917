import {
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { RemoteIssuer } from '../auth/remote-issuer.js';
import { claimsFromTheFuture, criticalHeader, nonCanonicalJws } from '../auth/token-checks.js';
import type { ClaimCondition, TemplatePart, TrustedIssuer } from './config.js';
import { invalidGrant, invalidRequest, OAuthError } from './errors.js';

/**
 * Verifying a pipeline's OIDC token (the RFC 8693 `subject_token`) against the trusted issuer
 * that signed it: its JWKS (discovered, or the entry's `jwks_uri`), pinned asymmetric
 * algorithms, issuer, `exp`, then per entry the audience and the claim conditions. Every refusal
 * says which check failed in words an operator can act on.
 */

/** Longest subject token looked at; CI platforms' tokens are 1–2 KB. */
export const MAX_SUBJECT_TOKEN_LENGTH = 16 * 1024;
/** `typ` values an external OIDC token may carry (absent is fine too). */
const EXTERNAL_TYPES = new Set(['jwt', 'application/jwt', 'at+jwt', 'application/at+jwt']);

export interface VerifiedExternal {
  entry: TrustedIssuer;
  payload: JWTPayload;
  /** The workload's subject (the entry's template, or the token's `sub`). */
  subject: string;
}

export interface ExternalVerifierOptions {
  entries: TrustedIssuer[];
  /** The broker's own issuer URL: tokens from it are never subject tokens. */
  publicUrl: string;
  isOwnKid(kid: string): boolean;
  now(): number;
  fetchTimeoutMs?: number;
  /** How soon after a JWKS fetch an unknown kid may trigger another (default 30 s). */
  jwksCooldownMs?: number;
}

export class ExternalTokenVerifier {
  readonly #opts: ExternalVerifierOptions;
  readonly #byIssuer = new Map<string, { keys: RemoteIssuer; entries: TrustedIssuer[] }>();

  constructor(opts: ExternalVerifierOptions) {
    this.#opts = opts;
    for (const e of opts.entries) {
      const group = this.#byIssuer.get(e.issuer);
      if (group) group.entries.push(e);
      else
        this.#byIssuer.set(e.issuer, {
          keys: new RemoteIssuer(e.issuer, {
            jwksUri: e.jwksUri,
            fetchTimeoutMs: opts.fetchTimeoutMs,
            jwksCooldownMs: opts.jwksCooldownMs,
            unreachable: (why) =>
              new OAuthError(
                'temporarily_unavailable',
                `cannot fetch the signing keys of ${e.issuer} (${why}); try again shortly`,
              ),
            invalid: invalidGrant,
          }),
          entries: [e],
        });
    }
  }

  /** Whether any issuer is trusted at all (otherwise the endpoint refuses the grant type). */
  get enabled(): boolean {
    return this.#byIssuer.size > 0;
  }

  async verify(token: string): Promise<VerifiedExternal> {
    if (token.length > MAX_SUBJECT_TOKEN_LENGTH)
      throw invalidRequest(`subject_token is longer than ${MAX_SUBJECT_TOKEN_LENGTH} characters`);
    const shape = nonCanonicalJws(token);
    if (shape) throw invalidGrant(shape);
    let header: ProtectedHeaderParameters;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      throw invalidGrant('subject_token is not a JWT (expected the CI platform’s OIDC token)');
    }
    const crit = criticalHeader(header);
    if (crit) throw invalidGrant(crit);
    const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
    const ownKid = typeof header.kid === 'string' && this.#opts.isOwnKid(header.kid);
    if (unverified.iss === this.#opts.publicUrl || ownKid || typ?.startsWith('jitctl-')) {
      throw invalidGrant(
        'subject_token was issued by this broker (a credential or a session token); exchange the CI platform’s OIDC token instead',
      );
    }
    const iss = unverified.iss;
    const group = typeof iss === 'string' ? this.#byIssuer.get(iss) : undefined;
    if (!group) {
      // Which issuers are trusted is the operator's business, not an anonymous caller's.
      throw invalidGrant(
        `tokens from ${typeof iss === 'string' ? JSON.stringify(iss.slice(0, 200)) : 'an issuer-less JWT'} are not trusted by this broker`,
      );
    }
    const algorithms = [...new Set(group.entries.flatMap((e) => e.algorithms))];
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      throw invalidGrant(
        `tokens signed with ${JSON.stringify(header.alg)} are not accepted from ${iss} (accepted: ${algorithms.join(', ')})`,
      );
    }
    if (typ !== undefined && !EXTERNAL_TYPES.has(typ))
      throw invalidGrant(`a token of type ${JSON.stringify(header.typ)} is not an OIDC token`);

    const now = this.#opts.now();
    const payload = await group.keys.verify(token, {
      issuer: group.keys.issuer,
      algorithms,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(now),
      // Tolerance for clocks that differ on nbf/iat; exp is checked strictly below.
      clockTolerance: 30,
    });
    if ((payload.exp as number) * 1000 <= now) throw invalidGrant('the token has expired');
    const future = claimsFromTheFuture(payload, now, 30);
    if (future) throw invalidGrant(future);
    if (typeof payload.sub !== 'string' || payload.sub === '')
      throw invalidGrant('the token has no subject (sub)');

    const failures: string[] = [];
    for (const entry of group.entries) {
      const why = entryMismatch(entry, payload, header.alg);
      if (why === null) return { entry, payload, subject: renderSubject(entry, payload) };
      failures.push(group.entries.length === 1 ? why : `${entry.name}: ${why}`);
    }
    throw invalidGrant(
      group.entries.length === 1
        ? failures[0]!
        : `no trusted issuer entry for ${iss} accepts this token (${failures.join('; ')})`,
    );
  }
}

const show = (v: unknown) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
};

function claimText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** Why `condition` fails for `payload`, or null when it holds. Expected values are not revealed. */
export function conditionMismatch(c: ClaimCondition, payload: JWTPayload): string | null {
  const raw = payload[c.claim];
  if (raw === undefined || raw === null) return `the token has no \`${c.claim}\` claim`;
  const value = claimText(raw);
  if (value === undefined) return `the token's \`${c.claim}\` is not a single value`;
  const ok = c.kind === 'values' ? c.values.includes(value) : c.regex.test(value);
  return ok ? null : `condition \`${c.claim}\` not met (the token says ${show(value)})`;
}

function entryMismatch(entry: TrustedIssuer, payload: JWTPayload, alg: string): string | null {
  const aud = payload.aud;
  const audiences = Array.isArray(aud) ? aud : typeof aud === 'string' ? [aud] : [];
  if (!audiences.includes(entry.audience)) {
    // The expected audience is not named: the caller is not authenticated yet.
    return `wrong audience: the token is for ${show(aud ?? null)}, not for this broker (request the token with the audience its operators configured, usually the broker's URL)`;
  }
  if (!entry.algorithms.includes(alg)) return `tokens signed with ${alg} are not accepted`;
  for (const c of entry.conditions) {
    const why = conditionMismatch(c, payload);
    if (why !== null) return why;
  }
  if (entry.subject) {
    for (const part of entry.subject) {
      if ('claim' in part && claimText(payload[part.claim]) === undefined)
        return `the subject template uses \`${part.claim}\`, which the token does not have`;
    }
  }
  return null;
}

// C0/C1 controls, bidi controls and zero-width characters: a subject is shown to reviewers.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

export function renderTemplate(parts: TemplatePart[], payload: JWTPayload): string {
  return parts.map((p) => ('text' in p ? p.text : (claimText(payload[p.claim]) ?? ''))).join('');
}

function renderSubject(entry: TrustedIssuer, payload: JWTPayload): string {
  const subject = entry.subject ? renderTemplate(entry.subject, payload) : (payload.sub as string);
  if (subject === '' || subject.length > 255 || INVISIBLE.test(subject))
    throw invalidGrant(
      'the workload subject made from this token is empty, over 255 characters, or holds control characters',
    );
  return subject;
}
