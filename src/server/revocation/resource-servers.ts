import { createHash, timingSafeEqual } from 'node:crypto';
import { decodeJwt } from 'jose';
import { closest } from '../policy/suggest.js';

/**
 * The `resource_servers` setting: the relying parties that may ask the broker about credentials
 * (`POST /v1/introspect`, RFC 7662) and follow revocations (`GET /v1/revocations`). Each one
 * signs in as itself, either with a client id and secret (HTTP Basic, RFC 6749 §2.3.1; the broker
 * keeps only the secret's SHA-256), or with its own token from one of the `trusted_issuers` (a
 * Kubernetes service account, a CI job), optionally pinned to one subject.
 *
 * The secret must be long and random (at least 32 characters: `openssl rand -base64 32`), which
 * is what makes a plain SHA-256 the right hash here: there is nothing to guess, so a slow hash
 * would only slow every introspection down.
 */

export interface ResourceServer {
  /** Its name: the Basic user name for a secret, a label otherwise (logs, rate limits). */
  clientId: string;
  /** SHA-256 of the secret; absent for an entry that signs in with a token. */
  secretSha256: Buffer | undefined;
  /** The `trusted_issuers` entry whose tokens it signs in with. */
  trustedIssuer: string | undefined;
  /** With `trustedIssuer`: only this subject (the token's, or the entry's workload subject). */
  subject: string | undefined;
  /** Introspection answers about credentials for these audiences only; undefined: any. */
  audiences: string[] | undefined;
}

export class ResourceServerError extends Error {
  override name = 'ResourceServerError';
  constructor(
    readonly where: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

const KEYS = ['client_id', 'client_secret_sha256', 'trusted_issuer', 'subject', 'audiences'];
const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
export const MIN_SECRET_LENGTH = 32;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function text(v: unknown, where: string, what: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw new ResourceServerError(where, `must be ${what}`);
  return v.trim();
}

/** Parses the setting (a YAML list, or JSON of one in `JITCTL_SERVER_RESOURCE_SERVERS`). */
export function parseResourceServers(value: unknown, where: string): ResourceServer[] {
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      throw new ResourceServerError(
        where,
        'must be a list of resource servers (JSON in a variable)',
      );
    }
  }
  if (!Array.isArray(v))
    throw new ResourceServerError(
      where,
      'must be a list of resource servers',
      'e.g. [{client_id: k8s-prod, client_secret_sha256: <hex>}]',
    );
  const seen = new Set<string>();
  return v.map((entry, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(entry))
      throw new ResourceServerError(at, 'must be a mapping with client_id and a way to sign in');
    for (const key of Object.keys(entry)) {
      if (!KEYS.includes(key)) {
        const meant = closest(key, KEYS);
        throw new ResourceServerError(
          `${at}.${key}`,
          'unknown key',
          meant ? `did you mean \`${meant}\`?` : `keys: ${KEYS.join(', ')}`,
        );
      }
    }
    const clientId = text(entry.client_id, `${at}.client_id`, 'a name such as k8s-prod');
    if (!CLIENT_ID.test(clientId))
      throw new ResourceServerError(
        `${at}.client_id`,
        'may hold letters, digits and . _ : @ - (at most 128), starting with a letter or digit',
      );
    if (seen.has(clientId))
      throw new ResourceServerError(`${at}.client_id`, `${clientId} is listed twice`);
    seen.add(clientId);
    const hasSecret = entry.client_secret_sha256 !== undefined;
    const hasIssuer = entry.trusted_issuer !== undefined;
    if (hasSecret === hasIssuer)
      throw new ResourceServerError(
        at,
        'give exactly one of client_secret_sha256 (a secret) or trusted_issuer (its own token)',
        'a secret: openssl rand -base64 32 | tee secret | tr -d "\\n" | sha256sum',
      );
    let secretSha256: Buffer | undefined;
    if (hasSecret) {
      const hex = text(entry.client_secret_sha256, `${at}.client_secret_sha256`, 'hex');
      if (!/^[0-9a-fA-F]{64}$/.test(hex))
        throw new ResourceServerError(
          `${at}.client_secret_sha256`,
          'must be the SHA-256 of the secret as 64 hex digits (never the secret itself)',
          'printf %s "$SECRET" | sha256sum',
        );
      secretSha256 = Buffer.from(hex, 'hex');
    }
    const trustedIssuer = hasIssuer
      ? text(entry.trusted_issuer, `${at}.trusted_issuer`, 'the name of a trusted_issuers entry')
      : undefined;
    if (entry.subject !== undefined && !hasIssuer)
      throw new ResourceServerError(`${at}.subject`, 'goes with trusted_issuer');
    const subject =
      entry.subject === undefined ? undefined : text(entry.subject, `${at}.subject`, 'a subject');
    let audiences: string[] | undefined;
    if (entry.audiences !== undefined) {
      if (!Array.isArray(entry.audiences) || entry.audiences.length === 0)
        throw new ResourceServerError(`${at}.audiences`, 'must be a non-empty list of audiences');
      audiences = entry.audiences.map((a, j) =>
        text(a, `${at}.audiences[${j}]`, "a role's credential.audience"),
      );
    }
    return { clientId, secretSha256, trustedIssuer, subject, audiences };
  });
}

export const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** A Basic `client_id:client_secret`, URL-decoded as RFC 6749 §2.3.1 asks; undefined if malformed. */
export function parseBasic(authorization: string): { id: string; secret: string } | undefined {
  const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(authorization);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return {
      id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')),
    };
  } catch {
    return undefined;
  }
}

/** A fixed value to compare against for unknown ids, so they cost the same as known ones. */
const NOBODY = sha256('no such resource server');

/** The entry whose id and secret these are; the comparison takes the same time either way. */
export function bySecret(
  entries: readonly ResourceServer[],
  id: string,
  secret: string,
): ResourceServer | undefined {
  const entry = entries.find((e) => e.clientId === id && e.secretSha256 !== undefined);
  const ok = timingSafeEqual(sha256(secret), entry?.secretSha256 ?? NOBODY);
  return entry && ok && secret.length >= MIN_SECRET_LENGTH ? entry : undefined;
}

/** The entry a workload (trusted issuer entry + subject) signs in as. */
export function byWorkload(
  entries: readonly ResourceServer[],
  trustedIssuer: string,
  subject: string,
): ResourceServer | undefined {
  return entries.find(
    (e) => e.trustedIssuer === trustedIssuer && (e.subject === undefined || e.subject === subject),
  );
}

/** The unverified `iss` of a bearer token: which verifier to try (verification decides). */
export function issuerOf(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}
