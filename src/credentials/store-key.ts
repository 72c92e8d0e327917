import { createHash, randomBytes } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';

/**
 * The file store's key: 32 random bytes that seal every entry (A256KW + A256GCM), kept in the
 * store's `store-key` file wrapped with the passphrase (PBES2-HS512+A256KW, RFC 7518 §4.8).
 *
 * Why a key of its own instead of a passphrase-derived key per entry (the first format): the
 * expensive derivation then happens once per unlock, not once per entry read, and an unlocked
 * store can be kept by the agent (src/credentials/agent.ts) as this key alone, never the
 * passphrase. The key file's `kid` (a digest of the key, which reveals nothing of it) tells which
 * store a cached key belongs to without decrypting anything.
 */

export const STORE_KEY_FILE = 'store-key';
export const PASSPHRASE_ALG = 'PBES2-HS512+A256KW';
export const ENTRY_ALG = 'A256KW';
export const ENC = 'A256GCM';
/** Entries and key files with a larger `p2c` are refused: a planted header cannot make jitctl spin. */
export const MAX_P2C = 1_000_000;
const KEY_BYTES = 32;
const CONTENT_TYPE = 'jitctl-store-key';

export interface StoreKey {
  kid: string;
  key: Uint8Array;
}

/** The id of a store key: a truncated SHA-256 of it, domain-separated. */
export function keyId(key: Uint8Array): string {
  return createHash('sha256')
    .update('jitctl file store key\0')
    .update(key)
    .digest('base64url')
    .slice(0, 22);
}

export function newStoreKey(): StoreKey {
  const key = new Uint8Array(randomBytes(KEY_BYTES));
  return { kid: keyId(key), key };
}

/** Whether `key` is a store key with id `kid` (what the agent hands back is checked with this). */
export function isStoreKey(key: Uint8Array | undefined, kid: string): key is Uint8Array {
  return key !== undefined && key.length === KEY_BYTES && keyId(key) === kid;
}

/** The key file's text: the key wrapped with the passphrase. */
export async function sealStoreKey(
  sk: StoreKey,
  passphrase: Uint8Array,
  p2c: number,
): Promise<string> {
  return new CompactEncrypt(sk.key)
    .setProtectedHeader({ alg: PASSPHRASE_ALG, enc: ENC, kid: sk.kid, cty: CONTENT_TYPE })
    .setKeyManagementParameters({ p2c })
    .encrypt(passphrase);
}

/** The `kid` in a key file's header, or undefined when the text is not a key file. */
export function storeKeyId(text: string): string | undefined {
  try {
    const h = decodeProtectedHeader(text.trim());
    return h.alg === PASSPHRASE_ALG && h.cty === CONTENT_TYPE && typeof h.kid === 'string'
      ? h.kid
      : undefined;
  } catch {
    return undefined;
  }
}

/** Opens a key file with the passphrase: the key, or 'wrong' when it does not open. */
export async function openStoreKey(
  text: string,
  passphrase: Uint8Array,
): Promise<StoreKey | 'wrong'> {
  const kid = storeKeyId(text);
  if (kid === undefined) return 'wrong';
  try {
    const { plaintext } = await compactDecrypt(text.trim(), passphrase, {
      keyManagementAlgorithms: [PASSPHRASE_ALG],
      contentEncryptionAlgorithms: [ENC],
      maxPBES2Count: MAX_P2C,
    });
    return isStoreKey(plaintext, kid) ? { kid, key: plaintext } : 'wrong';
  } catch {
    return 'wrong';
  }
}

/** The algorithm and key id of an entry, read from its header without decrypting. */
export function entryHeader(text: string): { alg: string; kid: string | undefined } | undefined {
  try {
    const h = decodeProtectedHeader(text.trim());
    if (typeof h.alg !== 'string') return undefined;
    return { alg: h.alg, kid: typeof h.kid === 'string' ? h.kid : undefined };
  } catch {
    return undefined;
  }
}

/** Where an unlocked store key may be kept meanwhile (the unlock agent), by key id. */
export interface KeyCache {
  /** The key cached under `kid`, if any; the store checks that it is that key. */
  get(kid: string): Promise<Uint8Array | undefined>;
  /** Keeps `key` under `kid`. */
  put(kid: string, key: Uint8Array): Promise<void>;
}
