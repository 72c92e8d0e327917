import { createDecipheriv, pbkdf2 } from 'node:crypto';

/**
 * Opening the encrypted file store's entries: compact JWEs (RFC 7516 §7.1) with exactly one pair
 * of algorithms, the key wrapped with PBES2-HS512+A256KW (RFC 7518 §4.8) and the content sealed
 * with A256GCM (§5.3), opened with node:crypto. jose writes them (src/credentials/file-store.ts)
 * and could read them, but every `jitctl exec` reads one, and loading jose with the WebCrypto
 * layer it runs on cost about 17 ms of start-up (docs/performance.md); the steps themselves are
 * three calls into OpenSSL. Anything else (another algorithm, compression, critical extensions, a
 * count above `maxCount`, a short salt, malformed parts, a key or tag that does not check) is
 * refused with a JweError, before any derivation where the header alone decides.
 */

export const PBES2_ALG = 'PBES2-HS512+A256KW';
export const CONTENT_ENC = 'A256GCM';

export class JweError extends Error {
  override name = 'JweError';
}

/** RFC 3394 §2.2.3.1: the initial value that unwrapping checks. */
const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const BASE64URL = /^[A-Za-z0-9_-]*$/;

const derive = (pass: Uint8Array, salt: Buffer, count: number): Promise<Buffer> =>
  new Promise((resolve, reject) =>
    pbkdf2(pass, salt, count, 32, 'sha512', (err, key) => (err ? reject(err) : resolve(key))),
  );

export async function decryptPbes2Jwe(
  compact: string,
  passphrase: Uint8Array,
  maxCount: number,
): Promise<{ plaintext: Uint8Array; header: Record<string, unknown> }> {
  const parts = compact.split('.');
  if (parts.length !== 5 || !parts.every((p) => BASE64URL.test(p))) {
    throw new JweError('not a compact JWE');
  }
  const [protectedHeader, encryptedKey, iv, ciphertext, tag] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(protectedHeader, 'base64url').toString('utf8'));
  } catch {
    throw new JweError('the protected header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new JweError('the protected header is not an object');
  }
  const h = header as Record<string, unknown>;
  if (h.alg !== PBES2_ALG || h.enc !== CONTENT_ENC) throw new JweError('unexpected algorithms');
  if (h.zip !== undefined || h.crit !== undefined) {
    throw new JweError('compression and critical extensions are not accepted');
  }
  const count = h.p2c;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1 || count > maxCount) {
    throw new JweError('the PBES2 count is out of bounds');
  }
  if (typeof h.p2s !== 'string' || !BASE64URL.test(h.p2s)) throw new JweError('no PBES2 salt');
  const saltInput = Buffer.from(h.p2s, 'base64url');
  const wrapped = Buffer.from(encryptedKey, 'base64url');
  const nonce = Buffer.from(iv, 'base64url');
  const authTag = Buffer.from(tag, 'base64url');
  // RFC 7518: a salt input of at least 8 octets; a wrapped 256-bit key is 40 octets (RFC 3394);
  // GCM with a 96-bit IV and a 128-bit tag (§5.3).
  if (
    saltInput.length < 8 ||
    wrapped.length !== 40 ||
    nonce.length !== 12 ||
    authTag.length !== 16
  ) {
    throw new JweError('a part has the wrong length');
  }
  // §4.8.1.1: the salt is the algorithm name, a zero octet, then the salt input.
  const salt = Buffer.concat([Buffer.from(PBES2_ALG, 'ascii'), Buffer.from([0]), saltInput]);
  const kek = await derive(passphrase, salt, count);
  let cek: Buffer;
  try {
    const unwrap = createDecipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
    cek = Buffer.concat([unwrap.update(wrapped), unwrap.final()]);
  } catch {
    throw new JweError('the content key does not unwrap (another passphrase?)');
  }
  try {
    const gcm = createDecipheriv('aes-256-gcm', cek, nonce, { authTagLength: 16 });
    // RFC 7516 §5.2 step 14: the additional authenticated data is the header as encoded.
    gcm.setAAD(Buffer.from(protectedHeader, 'ascii'));
    gcm.setAuthTag(authTag);
    const plaintext = Buffer.concat([
      gcm.update(Buffer.from(ciphertext, 'base64url')),
      gcm.final(),
    ]);
    return { plaintext, header: h };
  } catch {
    throw new JweError('the content does not authenticate');
  }
}
