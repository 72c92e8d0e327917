import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';
import type { ServerClock } from '../clock.js';
import { refuseSharedFiles } from '../private-files.js';
import type { Db } from '../store/database.js';

/**
 * The key that signs credentials. Created on first start and kept either in the database (the
 * default: every replica shares it with no extra set-up) or in a key file (0600; for operators who
 * keep keys out of database backups; one that other users can read is refused). The kid is the key's RFC 7638 thumbprint, so it is stable
 * and a relying party can cache the JWKS by kid.
 */
export type SigningAlg = 'ES256' | 'EdDSA';
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'EdDSA'];

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
}

export interface KeyRing {
  /** The key that signs new credentials. */
  current: SigningKey;
  /** Public keys served at /.well-known/jwks.json (old ones stay until nothing they signed is valid). */
  jwks: JWK[];
  isOwnKid(kid: string): boolean;
}

export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

async function generate(alg: SigningAlg): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(
    alg,
    alg === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { extractable: true },
  );
  return { privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) };
}

function publicPart(jwk: JWK): JWK {
  const { kty, crv, x, y } = jwk;
  return Object.fromEntries(
    Object.entries({ kty, crv, x, y }).filter(([, v]) => v !== undefined),
  ) as JWK;
}

function algOfJwk(jwk: JWK, where: string): SigningAlg {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw new SigningKeyError(
    `${where}: the signing key must be a P-256 (ES256) or Ed25519 (EdDSA) private JWK, not ${jwk.kty}/${jwk.crv ?? '?'}`,
  );
}

async function toSigningKey(privateJwk: JWK, alg: SigningAlg): Promise<SigningKey> {
  const kid = await calculateJwkThumbprint(publicPart(privateJwk));
  const privateKey = (await importJWK(privateJwk, alg)) as CryptoKey;
  return { kid, alg, privateKey };
}

async function jwkEntry(publicJwk: JWK, alg: SigningAlg): Promise<JWK> {
  const pub = publicPart(publicJwk);
  return { ...pub, kid: await calculateJwkThumbprint(pub), alg, use: 'sig' };
}

/** The database key for `alg`, created if none exists (replicas racing insert once: unique slot). */
export async function loadKeyRingFromDb(
  db: Db,
  alg: SigningAlg,
  clock: ServerClock,
): Promise<KeyRing> {
  const slot = `current:${alg}`;
  const read = () =>
    db.kysely.selectFrom('signing_keys').selectAll().where('slot', '=', slot).executeTakeFirst();
  let row = await read();
  if (!row) {
    const { privateJwk, publicJwk } = await generate(alg);
    await db.kysely
      .insertInto('signing_keys')
      .values({
        kid: await calculateJwkThumbprint(publicPart(publicJwk)),
        slot,
        alg,
        private_jwk: JSON.stringify(privateJwk),
        public_jwk: JSON.stringify(publicPart(publicJwk)),
        created_at: clock.now(),
      })
      .onConflict((oc) => oc.column('slot').doNothing())
      .execute();
    row = await read();
    if (!row) throw new SigningKeyError('could not create the signing key in the database');
  }
  const current = await toSigningKey(JSON.parse(row.private_jwk) as JWK, alg);
  const all = await db.kysely.selectFrom('signing_keys').select(['public_jwk', 'alg']).execute();
  const jwks = await Promise.all(
    all.map((k) => jwkEntry(JSON.parse(k.public_jwk) as JWK, k.alg as SigningAlg)),
  );
  return ringOf(current, jwks);
}

/**
 * The key in `path` (a private JWK as JSON), created with `alg` if the file does not exist. An
 * existing file decides the algorithm itself.
 */
export async function loadKeyRingFromFile(path: string, alg: SigningAlg): Promise<KeyRing> {
  // Whoever reads this file can mint credentials: refuse one other users can read.
  refuseSharedFiles([path], 'the private key that signs credentials');
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new SigningKeyError(`cannot read signing key ${path}: ${(err as Error).message}`);
  }
  if (text === undefined) {
    const { privateJwk } = await generate(alg);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    try {
      // wx: two brokers starting at once must not overwrite each other's new key.
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${JSON.stringify(privateJwk)}\n`);
      await fh.close();
      text = JSON.stringify(privateJwk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new SigningKeyError(`cannot create signing key ${path}: ${(err as Error).message}`);
      text = await readFile(path, 'utf8');
    }
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new SigningKeyError(`${path} is not a JSON Web Key`);
  }
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string')
    throw new SigningKeyError(`${path} must hold a private JWK (with "d")`);
  const fileAlg = algOfJwk(jwk, path);
  const current = await toSigningKey(jwk, fileAlg);
  return ringOf(current, [await jwkEntry(jwk, fileAlg)]);
}

function ringOf(current: SigningKey, jwks: JWK[]): KeyRing {
  const kids = new Set(jwks.map((k) => k.kid!));
  kids.add(current.kid);
  return { current, jwks, isOwnKid: (kid) => kids.has(kid) };
}
