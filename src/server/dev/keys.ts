import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/**
 * The provider's signing keys and cookie keys, kept in the data directory so that ID tokens the
 * broker already accepted, and browser sessions, survive a restart of `jitctl server --dev`.
 * One JSON file, 0600 in a 0700 directory, created on first start.
 */
export interface ProviderKeys {
  /** Private JWKs (oidc-provider signs with them and publishes their public halves). */
  jwks: { keys: JWK[] };
  /** Keygrip keys for signed cookies. */
  cookieKeys: string[];
}

export const KEYS_FILE = 'idp-keys.json';

export class KeysFileError extends Error {
  override name = 'KeysFileError';
}

async function createKeys(): Promise<ProviderKeys> {
  // RS256 is the one algorithm every OpenID Connect relying party must accept (OIDC Core §15.1);
  // it signs ID tokens. An ES256 key is published too for relying parties that prefer it.
  const rsa = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const stamp = Date.now().toString(36);
  return {
    jwks: {
      keys: [
        { ...(await exportJWK(rsa.privateKey)), kid: `rs-${stamp}`, alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(ec.privateKey)), kid: `es-${stamp}`, alg: 'ES256', use: 'sig' },
      ],
    },
    cookieKeys: [randomBytes(32).toString('base64url')],
  };
}

function parseKeys(text: string, file: string): ProviderKeys {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new KeysFileError(`${file} is not valid JSON; delete it to create new keys`);
  }
  const o = v as { v?: unknown; jwks?: { keys?: unknown }; cookie_keys?: unknown };
  const keys = o?.jwks?.keys;
  const cookies = o?.cookie_keys;
  if (
    o?.v !== 1 ||
    !Array.isArray(keys) ||
    keys.length === 0 ||
    !keys.every((k) => typeof k === 'object' && k !== null && typeof k.kid === 'string') ||
    !Array.isArray(cookies) ||
    cookies.length === 0 ||
    !cookies.every((c) => typeof c === 'string' && c.length >= 16)
  ) {
    throw new KeysFileError(
      `${file} does not hold the development identity provider's keys; delete it to create new ones`,
    );
  }
  return { jwks: { keys: keys as JWK[] }, cookieKeys: cookies as string[] };
}

/** Reads the keys from `dataDir`, creating them (and the directory) on first use. */
export async function loadOrCreateKeys(dataDir: string): Promise<ProviderKeys> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, KEYS_FILE);
  try {
    return parseKeys(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const keys = await createKeys();
  const tmp = `${file}.${process.pid}.tmp`;
  const body = { v: 1, jwks: keys.jwks, cookie_keys: keys.cookieKeys };
  await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  try {
    // link() fails when the file exists: two brokers started at once on one data directory
    // agree on whichever keys landed first instead of each signing with its own.
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return parseKeys(await readFile(file, 'utf8'), file);
  } finally {
    await unlink(tmp).catch(() => {});
  }
  return keys;
}
