import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  base32Decode,
  base32Encode,
  fileNameOf,
  keyOfFileName,
  MAX_KEY_BYTES,
} from '../../src/credentials/file-name.js';

describe('file names of store keys', () => {
  it('matches RFC 4648 base32 test vectors (lower case, no padding)', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'my'],
      ['fo', 'mzxq'],
      ['foo', 'mzxw6'],
      ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'],
      ['foobar', 'mzxw6ytboi'],
    ];
    for (const [plain, encoded] of vectors) {
      expect(base32Encode(new TextEncoder().encode(plain))).toBe(encoded);
      expect(new TextDecoder().decode(base32Decode(encoded))).toBe(plain);
    }
  });

  it('maps every key to one lower-case portable name and back', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme' }), (key) => {
        const name = fileNameOf(key);
        if (new TextEncoder().encode(key).length > MAX_KEY_BYTES) {
          expect(name).toBeUndefined();
          return;
        }
        expect(name).toMatch(/^[a-z2-7]+\.jwe$/);
        expect(name!.length).toBeLessThanOrEqual(255);
        expect(keyOfFileName(name!)).toBe(key);
      }),
    );
  });

  it('refuses keys that would not fit in a file name, and the empty key', () => {
    expect(fileNameOf('x'.repeat(MAX_KEY_BYTES))).toBeDefined();
    expect(fileNameOf('x'.repeat(MAX_KEY_BYTES + 1))).toBeUndefined();
    expect(fileNameOf('')).toBeUndefined();
  });

  it('ignores names that are not canonical entry names', () => {
    for (const name of [
      'passphrase-check',
      '.mzxw6.jwe.1234.tmp',
      'MZXW6.jwe',
      'mzxw6.JWE',
      'mzxw7.jwe', // leftover bits not zero: not what the encoder writes
      'm.jwe', // five bits: no whole byte
      '.jwe',
      'mzxw6',
      '/x3.jwe',
    ]) {
      expect(keyOfFileName(name), name).toBeUndefined();
    }
    // Invalid UTF-8 (a lone continuation byte) is not a key.
    expect(keyOfFileName(`${base32Encode(Uint8Array.of(0x80))}.jwe`)).toBeUndefined();
  });
});
