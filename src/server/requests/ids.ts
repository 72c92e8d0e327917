import { randomBytes } from 'node:crypto';

/**
 * Request ids: `req_` + 12 base58 characters (about 70 bits from the CSPRNG). Base58 leaves out
 * 0/O and I/l so an id read aloud or copied from a chat survives; 70 bits make ids unguessable, so
 * knowing one is never a way in (access is still checked on every route).
 */
const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const LENGTH = 12;

export const REQUEST_ID_PATTERN = /^req_[1-9A-HJ-NP-Za-km-z]{12}$/;

export function newRequestId(): string {
  let out = 'req_';
  while (out.length < 4 + LENGTH) {
    for (const byte of randomBytes(LENGTH * 2)) {
      // Rejection sampling: 232 = 4 × 58, so bytes below it map uniformly onto the alphabet.
      if (byte < 232 && out.length < 4 + LENGTH) out += ALPHABET[byte % 58];
    }
  }
  return out;
}
