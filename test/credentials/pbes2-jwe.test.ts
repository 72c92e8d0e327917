import fc from 'fast-check';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import {
  CONTENT_ENC,
  decryptPbes2Jwe,
  JweError,
  PBES2_ALG,
} from '../../src/credentials/pbes2-jwe.js';

/**
 * The file store reads its entries with node:crypto (src/credentials/pbes2-jwe.ts) while jose
 * writes them: what jose writes must open to the same bytes, and everything jose's own reader
 * would refuse (with the store's pinned algorithms and count limit) must be refused too, without
 * deriving a key when the header alone says no.
 */

const pbkdf2 = vi.hoisted(() => ({ counts: [] as number[] }));
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return {
    ...real,
    pbkdf2: ((...args: Parameters<typeof real.pbkdf2>) => {
      pbkdf2.counts.push(args[2]);
      return real.pbkdf2(...args);
    }) as typeof real.pbkdf2,
  };
});

const enc = new TextEncoder();
const PASS = enc.encode('correct horse battery staple');
const MAX = 1_000_000;

async function seal(
  plaintext: string,
  opts: { pass?: Uint8Array; p2c?: number; header?: Record<string, unknown>; alg?: string } = {},
): Promise<string> {
  return new CompactEncrypt(enc.encode(plaintext))
    .setProtectedHeader({ alg: opts.alg ?? PBES2_ALG, enc: CONTENT_ENC, ...opts.header })
    .setKeyManagementParameters({ p2c: opts.p2c ?? 1000 })
    .encrypt(opts.pass ?? PASS);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const headerOf = (jwe: string) =>
  JSON.parse(Buffer.from(jwe.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
const withHeader = (jwe: string, header: Record<string, unknown>) =>
  [b64(header), ...jwe.split('.').slice(1)].join('.');

async function refused(jwe: string, pass = PASS, max = MAX): Promise<JweError> {
  try {
    await decryptPbes2Jwe(jwe, pass, max);
  } catch (err) {
    expect(err).toBeInstanceOf(JweError);
    return err as JweError;
  }
  throw new Error('expected the JWE to be refused');
}

describe('decryptPbes2Jwe', () => {
  it('opens what jose writes, to the same bytes and header (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
        async (text, passphrase, p2c, key) => {
          const pass = enc.encode(passphrase);
          const jwe = await seal(text, {
            pass,
            p2c,
            header: key === undefined ? {} : { jitctl_key: key },
          });
          const ours = await decryptPbes2Jwe(jwe, pass, MAX);
          const theirs = await compactDecrypt(jwe, pass, {
            keyManagementAlgorithms: [PBES2_ALG],
            contentEncryptionAlgorithms: [CONTENT_ENC],
            maxPBES2Count: MAX,
          });
          expect(Buffer.from(ours.plaintext)).toEqual(Buffer.from(theirs.plaintext));
          expect(ours.header).toEqual(theirs.protectedHeader);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses another passphrase', async () => {
    expect((await refused(await seal('x'), enc.encode('wrong'))).message).toContain('unwrap');
  });

  it('never yields other bytes when any character is changed (property)', async () => {
    const jwe = await seal('{"v":1,"token":"secret"}', { header: { jitctl_key: 'k' } });
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: jwe.length - 1 }),
        fc.constantFrom(...'ABCabc019-_.'),
        async (at, c) => {
          const changed = jwe.slice(0, at) + c + jwe.slice(at + 1);
          if (changed === jwe) return;
          try {
            const r = await decryptPbes2Jwe(changed, PASS, MAX);
            // Only a change in unused trailing bits of a base64url part can decode to the same.
            expect(Buffer.from(r.plaintext).toString()).toBe('{"v":1,"token":"secret"}');
            expect(r.header).toEqual(headerOf(jwe));
          } catch (err) {
            expect(err).toBeInstanceOf(JweError);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a header changed after sealing (it is authenticated)', async () => {
    const jwe = await seal('x', { header: { jitctl_key: 'a' } });
    await refused(withHeader(jwe, { ...headerOf(jwe), jitctl_key: 'b' }));
  });

  it('refuses other algorithms, compression and critical extensions', async () => {
    await refused(await seal('x', { alg: 'PBES2-HS256+A128KW' }));
    const jwe = await seal('x');
    await refused(withHeader(jwe, { ...headerOf(jwe), enc: 'A128GCM' }));
    await refused(withHeader(jwe, { ...headerOf(jwe), alg: 'dir' }));
    await refused(withHeader(jwe, { ...headerOf(jwe), zip: 'DEF' }));
    await refused(withHeader(jwe, { ...headerOf(jwe), crit: ['exp'], exp: 1 }));
  });

  it('refuses malformed compact serializations', async () => {
    const jwe = await seal('x');
    const parts = jwe.split('.');
    await refused('');
    await refused('not a JWE at all');
    await refused(parts.slice(0, 4).join('.'));
    await refused([...parts, 'extra'].join('.'));
    await refused([parts[0], `${parts[1]}+`, ...parts.slice(2)].join('.'));
    await refused(['W10', ...parts.slice(1)].join('.')); // header is an array
    await refused(['bm90IGpzb24', ...parts.slice(1)].join('.')); // header is not JSON
    await refused([parts[0], parts[1], 'AAAA', ...parts.slice(3)].join('.')); // short IV
    await refused([...parts.slice(0, 4), 'AAAA'].join('.')); // short tag
    await refused([parts[0], 'AAAA', ...parts.slice(2)].join('.')); // short wrapped key
  });

  it('refuses counts and salts out of bounds before deriving anything', async () => {
    const jwe = await seal('x');
    const h = headerOf(jwe);
    pbkdf2.counts.length = 0;
    for (const p2c of [0, -1, 1.5, '1000', null, 5_000_000, Number.MAX_SAFE_INTEGER + 2]) {
      await refused(withHeader(jwe, { ...h, p2c }));
    }
    await refused(withHeader(jwe, { ...h, p2s: 'c2hvcnQ' })); // 5 octets
    await refused(withHeader(jwe, { ...h, p2s: 42 }));
    const { p2s: _, ...noSalt } = h;
    await refused(withHeader(jwe, noSalt));
    expect(pbkdf2.counts).toEqual([]);
    // The limit is the caller's: the same entry opens under a higher one, and not under its own count.
    const counted = await seal('y', { p2c: 1500 });
    await refused(counted, PASS, 1499);
    expect(pbkdf2.counts).toEqual([]);
    expect(Buffer.from((await decryptPbes2Jwe(counted, PASS, 1500)).plaintext).toString()).toBe(
      'y',
    );
    expect(pbkdf2.counts).toEqual([1500]);
  });
});
