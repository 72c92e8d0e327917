import { join } from 'node:path';
import { Secret } from '../../src/api/secret.js';
import { fileStore } from '../../src/credentials/file-store.js';
import { credentialKey, encodeCredential } from '../../src/credentials/records.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import type { TestHome } from '../support/cli.js';

/**
 * Puts elevated credentials where a spawned jitctl finds them: the encrypted file store of a
 * test home (the real files, the real passphrase check), as `jitctl request` will once it has
 * waited for approval. Tests of exec, shell and credential start from here.
 */

export const TEST_SERVER = 'https://jit.example.test';
export const TEST_PASSPHRASE = 'test file-store passphrase';

/** The environment for a CLI that reads the test home's file store. */
export function fileStoreEnv(home: TestHome): Record<string, string> {
  return {
    ...home.env,
    JITCTL_SERVER: TEST_SERVER,
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: TEST_PASSPHRASE,
  };
}

export function homeStore(home: TestHome): CredentialStore {
  return fileStore({
    dir: join(home.env.XDG_DATA_HOME!, 'jitctl', 'store'),
    passphrase: async () => new Secret(TEST_PASSPHRASE),
  });
}

export interface SeededCredential {
  role: string;
  requestId: string;
  token: string;
  expiresAt: string;
}

export async function seedCredential(
  store: CredentialStore,
  opts: {
    role: string;
    /** Validity from now in ms; negative for an expired credential. */
    validMs?: number;
    env?: Record<string, string>;
    token?: string;
    server?: string;
  },
): Promise<SeededCredential> {
  const token =
    opts.token ?? `eyJ.test-token-${opts.role}-${Math.random().toString(36).slice(2)}.sig`;
  const requestId = `req_${opts.role.replace(/[^a-z0-9]/gi, '')}${Math.random().toString(36).slice(2, 6)}`;
  const expiresAt = new Date(Date.now() + (opts.validMs ?? 15 * 60_000)).toISOString();
  const env = opts.env ?? { KUBE_TOKEN: token };
  await store.set(
    credentialKey(opts.server ?? TEST_SERVER, opts.role),
    encodeCredential({
      role: opts.role,
      requestId,
      token: new Secret(token),
      expiresAt,
      env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, new Secret(v)])),
    }),
  );
  return { role: opts.role, requestId, token, expiresAt };
}

/** Polls `probe` until it returns a value (generous default: the machine may be busy). */
export async function waitFor<T>(
  probe: () => T | undefined,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** POSIX single quotes, for command lines handed to `script -c`. */
export function sh(...words: string[]): string {
  return words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(' ');
}
