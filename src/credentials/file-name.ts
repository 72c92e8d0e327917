/**
 * Store keys as file names, reversibly, so that `list` reads a directory and decrypts nothing.
 *
 * RFC 4648 base32 in lower case without padding, not base64url: base64url tells keys apart by
 * letter case, and the default file systems of macOS (APFS) and Windows (NTFS) ignore case, so
 * two keys could land in one file there. Base32's alphabet has one case and no `/` or `.`, so
 * every key maps to one plain, portable name.
 */

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const SUFFIX = '.jwe';
/** NAME_MAX is 255 bytes on Linux, macOS and Windows; base32 grows 8/5, plus the suffix. */
export const MAX_KEY_BYTES = 150;

export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >>> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** The bytes of a base32 text, or undefined when it is not canonical base32 of this alphabet. */
export function base32Decode(text: string): Uint8Array | undefined {
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of text) {
    const v = ALPHABET.indexOf(ch);
    if (v === -1) return undefined;
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((buffer >>> bits) & 0xff);
    }
    buffer &= (1 << bits) - 1;
  }
  // Leftover bits must be padding zeros and fewer than a full byte: one name per key.
  if (bits >= 5 || buffer !== 0) return undefined;
  return Uint8Array.from(out);
}

/** The file name of a key, or undefined when the key is too long for a file name. */
export function fileNameOf(key: string): string | undefined {
  const bytes = new TextEncoder().encode(key);
  if (bytes.length === 0 || bytes.length > MAX_KEY_BYTES) return undefined;
  return base32Encode(bytes) + SUFFIX;
}

/** The key of an entry's file name, or undefined for any other file (temp files, the verifier). */
export function keyOfFileName(name: string): string | undefined {
  if (!name.endsWith(SUFFIX)) return undefined;
  const bytes = base32Decode(name.slice(0, -SUFFIX.length));
  if (!bytes || bytes.length === 0) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
