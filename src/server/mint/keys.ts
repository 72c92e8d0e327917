import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';

/**
 * The keys that sign credentials (and pipelines' session tokens). One key signs at a time; keys
 * it replaced stay published in the JWKS until nothing they signed can still be valid, then are
 * retired (docs/operations.md "Keys"). They live in the database (the default: every replica
 * shares them with no extra set-up) or in a key file (key-store-file.ts). A kid is the key's
 * RFC 7638 thumbprint, so it is stable and relying parties can cache the JWKS by kid.
 *
 * Which algorithm to choose depends on who verifies: ES256 is accepted by every relying party we
 * know of; RS256 by all too, and it is the only one Microsoft Entra supports for workload
 * identity federation; EdDSA is refused by Kubernetes, jsonwebtoken and the clouds' federation
 * (docs/operations.md has the table).
 */
export type SigningAlg = 'ES256' | 'EdDSA' | 'RS256';
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'EdDSA', 'RS256'];

/** RSA keys shorter than this are refused (NIST SP 800-131A). */
const MIN_RSA_BITS = 2048;

export type KeyState = 'signing' | 'published' | 'retired';

/** What is known about a key, public parts only. */
export interface KeyRecord {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** When it stopped signing (null while it signs; may be null for keys from before rotation). */
  rotatedAt: number | null;
  retiredAt: number | null;
  publicJwk: JWK;
}

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
}

export interface KeyRing {
  /** The key that signs new credentials now. */
  readonly current: SigningKey;
  /** Public keys served at /.well-known/jwks.json: the signing key and every published one. */
  readonly jwks: JWK[];
  /** Whether `kid` is or was one of the broker's keys (such a token is never a sign-in). */
  isOwnKid(kid: string): boolean;
  /** The public key of a published kid, to verify the broker's own session tokens. */
  publicKey(kid: string): Promise<CryptoKey | undefined>;
}

export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** The public members of a JWK (RFC 7638 §3.2 lists exactly these per key type). */
export function publicPart(jwk: JWK): JWK {
  const { kty, crv, x, y, n, e } = jwk;
  const members = kty === 'RSA' ? { kty, n, e } : { kty, crv, x, y };
  return Object.fromEntries(Object.entries(members).filter(([, v]) => v !== undefined)) as JWK;
}

export function algOfJwk(jwk: JWK, where: string): SigningAlg {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'RSA' && typeof jwk.n === 'string') {
    const bits = Buffer.from(jwk.n, 'base64url').length * 8;
    if (bits < MIN_RSA_BITS)
      throw new SigningKeyError(`${where}: the RSA key has ${bits} bits; at least ${MIN_RSA_BITS}`);
    return 'RS256';
  }
  throw new SigningKeyError(
    `${where}: a signing key must be a P-256 (ES256), Ed25519 (EdDSA) or RSA (RS256) JWK, not ${String(jwk.kty)}/${jwk.crv ?? '?'}`,
  );
}

export const kidOf = (jwk: JWK): Promise<string> => calculateJwkThumbprint(publicPart(jwk));

/** A fresh key pair for `alg`, as JWKs, and its kid. */
export async function generateKey(
  alg: SigningAlg,
): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(
    alg,
    alg === 'EdDSA'
      ? { crv: 'Ed25519', extractable: true }
      : alg === 'RS256'
        ? { modulusLength: MIN_RSA_BITS, extractable: true }
        : { extractable: true },
  );
  const privateJwk = await exportJWK(privateKey);
  const publicJwk = publicPart(await exportJWK(publicKey));
  return { kid: await kidOf(publicJwk), privateJwk, publicJwk };
}

export async function toSigningKey(privateJwk: JWK, alg: SigningAlg): Promise<SigningKey> {
  const privateKey = (await importJWK(privateJwk, alg)) as CryptoKey;
  return { kid: await kidOf(privateJwk), alg, privateKey };
}

/** A JWKS entry: public members, kid, alg and use only. */
export function jwksEntry(r: KeyRecord): JWK {
  return { ...publicPart(r.publicJwk), kid: r.kid, alg: r.alg, use: 'sig' };
}

/**
 * The key ring the running broker signs and verifies with. `update` swaps in a new key set read
 * from the store (key-watch.ts re-reads it every few seconds), so a rotation reaches every
 * replica without a restart; a request already signing keeps the key it started with.
 */
export class LiveKeyRing implements KeyRing {
  #current: SigningKey;
  #jwks: JWK[] = [];
  readonly #published = new Map<string, JWK>();
  readonly #ever = new Set<string>();
  readonly #imported = new Map<string, Promise<CryptoKey>>();

  constructor(current: SigningKey, records: KeyRecord[]) {
    this.#current = current;
    this.update(current, records);
  }

  get current(): SigningKey {
    return this.#current;
  }

  get jwks(): JWK[] {
    return this.#jwks;
  }

  update(current: SigningKey, records: KeyRecord[]): void {
    this.#current = current;
    const live = records.filter((r) => r.state !== 'retired');
    // The signing key first, then the newest published ones.
    live.sort(
      (a, b) =>
        Number(b.kid === current.kid) - Number(a.kid === current.kid) || b.createdAt - a.createdAt,
    );
    if (!live.some((r) => r.kid === current.kid))
      throw new SigningKeyError(`the signing key ${current.kid} is not among the published keys`);
    this.#jwks = live.map(jwksEntry);
    this.#published.clear();
    for (const j of this.#jwks) this.#published.set(j.kid!, j);
    for (const r of records) this.#ever.add(r.kid);
    for (const kid of this.#imported.keys())
      if (!this.#published.has(kid)) this.#imported.delete(kid);
  }

  readonly isOwnKid = (kid: string): boolean => this.#ever.has(kid);

  publicKey(kid: string): Promise<CryptoKey | undefined> {
    const jwk = this.#published.get(kid);
    if (!jwk) return Promise.resolve(undefined);
    let key = this.#imported.get(kid);
    if (!key) {
      key = importJWK(jwk, jwk.alg) as Promise<CryptoKey>;
      this.#imported.set(kid, key);
    }
    return key;
  }
}
