import { link, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { Secret } from '../api/secret.js';
import type { Context } from '../cli/context.js';
import { AuthError, ExitCode, JitError } from '../cli/errors.js';
import { fileNameOf, keyOfFileName, MAX_KEY_BYTES } from './file-name.js';
import {
  checkPrivateDir,
  errno,
  fsError,
  listNames,
  readPrivate,
  writeTemp,
} from './private-files.js';

/*
 * Everything of the file store and its unlock agent is reached through this module (imported
 * dynamically, never statically from another chunk): the bundle then keeps it all in one file on
 * a command's path, where each extra module file costs start-up time.
 */
export {
  agentCache,
  agentLocation,
  agentStatus,
  askAgent,
  checkAgentLocation,
  lockAgent,
} from './agent.js';
export { MAX_AGENT_TIMEOUT_MS, resolveAgentTimeout } from './agent-settings.js';
export { checkPrivateDir, errno, UnsafePathError } from './private-files.js';

import type { CredentialStore } from './store.js';
import {
  ENC,
  ENTRY_ALG,
  entryHeader,
  isStoreKey,
  type KeyCache,
  MAX_P2C,
  newStoreKey,
  openStoreKey,
  PASSPHRASE_ALG,
  STORE_KEY_FILE,
  type StoreKey,
  sealStoreKey,
  storeKeyId,
} from './store-key.js';

/**
 * The encrypted file store, used only when chosen (`--store file`, config `store`, or
 * `JITCTL_STORE=file`): one compact JWE per entry (RFC 7516), sealed with the store's own random
 * key (A256KW + A256GCM), and that key kept in `store-key` wrapped with the passphrase
 * (PBES2-HS512+A256KW, RFC 7518 §4.8; src/credentials/store-key.ts). Files are 0600 in a 0700
 * directory; anything looser is refused rather than fixed behind the user's back (the same rule
 * as ssh's private keys).
 *
 * Unlocking opens the key file: a passphrase that does not open it is wrong (exit 4); an entry
 * that does not open with the right key was damaged or planted and counts as absent. Each entry
 * names its own key in its protected header, which AES-GCM authenticates, so a file copied or
 * renamed onto another key's name is foreign too, and carries the store key's id, so an entry of
 * another store is foreign as well.
 *
 * With the unlock agent (`cache`), a key unlocked by an earlier command is fetched from the agent
 * instead of asking for the passphrase and deriving; the passphrase itself is never cached.
 *
 * Stores written by jitctl 0.1 held one passphrase-wrapped JWE per entry and a `passphrase-check`
 * file. They keep opening: the first write creates the store key (after checking the passphrase
 * against the old files) and rewrites the old entries under it; an old entry read before that
 * opens with the passphrase as before.
 */

/**
 * PBKDF2-HMAC-SHA512 iterations of the key file. The trade-off: every command that unlocks the
 * store pays one derivation (not one per entry), and issue #6 holds `exec -- true` to 1.8× a bare
 * `node`. OWASP's 210,000 costs about 0.25 s here, which no command wrapper can afford on every
 * call; 20,000 costs about 24 ms on this machine (2 cores, Node 20) and still makes each offline
 * guess 20,000 HMAC-SHA512 rounds. The passphrase's own strength matters far more than this
 * factor of ten, and the files are 0600 in a 0700 directory anyway. jose writes the count into
 * the header (`p2c`), so it can be raised later. docs/credentials.md has the measurement.
 */
export const FILE_STORE_P2C = 20_000;
/** Protected-header parameter naming the entry's key. */
const KEY_HEADER = 'jitctl_key';
/** The 0.1 store's verifier: a passphrase-wrapped JWE of a known text. */
const LEGACY_VERIFIER = 'passphrase-check';
const LEGACY_VERIFIER_TEXT = 'jitctl file store v1';

/** Where an unlocked store key can be kept for a while and found again (the unlock agent). */
export interface FileStoreOptions {
  /** The store's directory (0700): `<data dir>/store`. */
  dir: string;
  /**
   * The passphrase, asked for at most once and only when the store must be unlocked and no
   * cached key serves (`list` and `delete` need none). `creating`: the store is new, so a prompt
   * asks twice.
   */
  passphrase(creating: boolean): Promise<Secret>;
  /** PBES2 iterations for a new key file (tests may lower it). */
  p2c?: number;
  cache?: KeyCache | undefined;
}

type Opened = { status: 'ok'; value: string } | { status: 'foreign' } | { status: 'failed' };

const WHAT = 'the credential store';

export function fileStore(options: FileStoreOptions): CredentialStore {
  const { dir, cache } = options;
  const p2c = options.p2c ?? FILE_STORE_P2C;
  const keyPath = join(dir, STORE_KEY_FILE);
  let passphrase: Promise<Uint8Array> | undefined;
  let unlocked: Promise<StoreKey | undefined> | undefined;

  const getPassphrase = (creating: boolean): Promise<Uint8Array> => {
    passphrase ??= options.passphrase(creating).then(
      (s) => new TextEncoder().encode(s.reveal()),
      (err: unknown) => {
        passphrase = undefined;
        throw err;
      },
    );
    return passphrase;
  };

  const wrongPassphrase = () =>
    new AuthError(`wrong passphrase for the encrypted credential store in ${dir}`, {
      hint:
        'check JITCTL_FILE_PASSPHRASE (or what you typed); if the passphrase is lost, ' +
        `remove ${dir} and run \`jitctl login\` again`,
    });

  /** The store key from an existing key file (cache first), or undefined when there is none. */
  const unlockExisting = async (): Promise<StoreKey | undefined> => {
    const text = await readPrivate(keyPath, true);
    if (text === undefined) return undefined;
    const kid = storeKeyId(text);
    if (kid === undefined) {
      throw new JitError(`the key file of the credential store is damaged: ${keyPath}`, 1, {
        hint: `restore it from a backup, or remove ${dir} and run \`jitctl login\` again`,
      });
    }
    const cached = await cache?.get(kid);
    if (isStoreKey(cached, kid)) return { kid, key: cached };
    const opened = await openStoreKey(text, await getPassphrase(false));
    if (opened === 'wrong') throw wrongPassphrase();
    await cache?.put(opened.kid, opened.key);
    return opened;
  };

  const unlock = (): Promise<StoreKey | undefined> => {
    unlocked ??= unlockExisting().catch((err: unknown) => {
      unlocked = undefined;
      throw err;
    });
    return unlocked;
  };

  /** The store key, created with the first write (and an old store's entries moved under it). */
  let writing: Promise<StoreKey> | undefined;
  const unlockForWrite = (): Promise<StoreKey> => {
    writing ??= createIfMissing().catch((err: unknown) => {
      writing = undefined;
      throw err;
    });
    return writing;
  };
  const createIfMissing = async (): Promise<StoreKey> => {
    const existing = await unlock();
    if (existing) return existing;
    const legacy = await legacyNames();
    const pass = await getPassphrase(legacy.length === 0);
    if (legacy.length > 0) await checkLegacyPassphrase(pass, legacy);
    const created = newStoreKey();
    const tmp = await writeTemp(dir, STORE_KEY_FILE, await sealStoreKey(created, pass, p2c));
    try {
      // link() creates the key file only if no other process did so first; then use theirs.
      await link(tmp, keyPath);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw fsError('cannot write', keyPath, err);
      unlocked = undefined;
      const theirs = await unlock();
      if (!theirs) throw fsError('cannot read', keyPath, err);
      return theirs;
    } finally {
      await unlink(tmp).catch(() => {});
    }
    unlocked = Promise.resolve(created);
    await cache?.put(created.kid, created.key);
    if (legacy.length > 0) await migrateLegacy(created, pass, legacy);
    return created;
  };

  const seal = async (sk: StoreKey, value: string, key: string): Promise<string> =>
    new CompactEncrypt(new TextEncoder().encode(value))
      .setProtectedHeader({ alg: ENTRY_ALG, enc: ENC, kid: sk.kid, [KEY_HEADER]: key })
      .encrypt(sk.key);

  const openEntry = async (sk: StoreKey, text: string, key: string): Promise<Opened> => {
    try {
      const { plaintext, protectedHeader } = await compactDecrypt(text.trim(), sk.key, {
        keyManagementAlgorithms: [ENTRY_ALG],
        contentEncryptionAlgorithms: [ENC],
      });
      if (protectedHeader.kid !== sk.kid || protectedHeader[KEY_HEADER] !== key)
        return { status: 'foreign' };
      return { status: 'ok', value: new TextDecoder().decode(plaintext) };
    } catch {
      return { status: 'failed' };
    }
  };

  // ---- jitctl 0.1 stores: one passphrase-wrapped JWE per entry ----------------------------

  const openLegacy = async (
    pass: Uint8Array,
    text: string,
    expectedKey: string | null,
  ): Promise<Opened> => {
    try {
      const { plaintext, protectedHeader } = await compactDecrypt(text.trim(), pass, {
        keyManagementAlgorithms: [PASSPHRASE_ALG],
        contentEncryptionAlgorithms: [ENC],
        maxPBES2Count: MAX_P2C,
      });
      if (protectedHeader[KEY_HEADER] !== (expectedKey ?? undefined)) return { status: 'foreign' };
      return { status: 'ok', value: new TextDecoder().decode(plaintext) };
    } catch {
      return { status: 'failed' };
    }
  };

  /** Entries (and the verifier) of the old format, by file name. */
  const legacyNames = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const name of await listNames(dir)) {
      if (name !== LEGACY_VERIFIER && keyOfFileName(name) === undefined) continue;
      const text = await readPrivate(join(dir, name), false);
      if (text !== undefined && entryHeader(text)?.alg === PASSPHRASE_ALG) out.push(name);
    }
    return out;
  };

  /** The passphrase must open the old verifier, or else one old entry, to become the store's. */
  const checkLegacyPassphrase = async (pass: Uint8Array, names: string[]): Promise<void> => {
    const ordered = [...names].sort((a, b) =>
      a === LEGACY_VERIFIER ? -1 : b === LEGACY_VERIFIER ? 1 : 0,
    );
    for (const name of ordered) {
      const text = await readPrivate(join(dir, name), name === LEGACY_VERIFIER);
      if (text === undefined) continue;
      const verifier = name === LEGACY_VERIFIER;
      const opened = await openLegacy(pass, text, verifier ? null : (keyOfFileName(name) ?? ''));
      if (verifier) {
        if (opened.status === 'ok' && opened.value === LEGACY_VERIFIER_TEXT) return;
        throw wrongPassphrase();
      }
      if (opened.status !== 'failed') return;
    }
    throw wrongPassphrase();
  };

  /** Rewrites the old entries under the new store key (best effort: one that fails stays old). */
  const migrateLegacy = async (sk: StoreKey, pass: Uint8Array, names: string[]): Promise<void> => {
    for (const name of names) {
      const key = keyOfFileName(name);
      if (key === undefined) continue;
      const text = await readPrivate(join(dir, name), false).catch(() => undefined);
      if (text === undefined) continue;
      const opened = await openLegacy(pass, text, key);
      if (opened.status !== 'ok') continue;
      const tmp = await writeTemp(dir, name, await seal(sk, opened.value, key));
      await rename(tmp, join(dir, name)).catch(() => unlink(tmp).catch(() => {}));
    }
    await unlink(join(dir, LEGACY_VERIFIER)).catch(() => {});
  };

  /** An old-format entry: opened with the passphrase; a failure is told apart as before. */
  const getLegacy = async (text: string, key: string): Promise<string | undefined> => {
    const pass = await getPassphrase(false);
    const opened = await openLegacy(pass, text, key);
    if (opened.status === 'ok') return opened.value;
    if (opened.status === 'failed') {
      // Does the passphrase open the store at all? Then the entry is damaged, not the passphrase.
      if ((await readPrivate(keyPath, true)) !== undefined) await unlock();
      else await checkLegacyPassphrase(pass, await legacyNames());
    }
    return undefined;
  };

  // -----------------------------------------------------------------------------------------

  const nameOf = (key: string): string => {
    const name = fileNameOf(key);
    if (name === undefined) {
      throw new JitError(
        `credential store key too long for the file store (${new TextEncoder().encode(key).length} bytes; at most ${MAX_KEY_BYTES})`,
        ExitCode.Error,
        { hint: 'use a shorter --server URL or role name, or the keychain store' },
      );
    }
    return name;
  };

  return {
    kind: 'file',
    description: `encrypted files in ${dir}`,

    async get(key) {
      const name = nameOf(key);
      if (!(await checkPrivateDir(dir, false, WHAT))) return undefined;
      const text = await readPrivate(join(dir, name), false);
      if (text === undefined) return undefined;
      const header = entryHeader(text);
      if (header?.alg === PASSPHRASE_ALG) return getLegacy(text, key);
      if (header?.alg !== ENTRY_ALG) return undefined;
      const sk = await unlock();
      if (!sk || header.kid !== sk.kid) return undefined;
      const opened = await openEntry(sk, text, key);
      return opened.status === 'ok' ? opened.value : undefined;
    },

    async set(key, value) {
      const name = nameOf(key);
      await checkPrivateDir(dir, true, WHAT);
      const sk = await unlockForWrite();
      const tmp = await writeTemp(dir, name, await seal(sk, value, key));
      try {
        await rename(tmp, join(dir, name));
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw fsError('cannot write', join(dir, name), err);
      }
    },

    /**
     * Unlocks ahead of a write that will come after a long wait (`jitctl request` keeping its
     * credential), so that the write after an approval needs no key derivation. Never prompts
     * and never creates the store: only a passphrase already given (or a cached key) is used.
     */
    async prepareWrite() {
      if (unlocked !== undefined || passphrase !== undefined) {
        if (await checkPrivateDir(dir, false, WHAT)) await unlock();
      }
    },

    async delete(key) {
      const name = nameOf(key);
      if (!(await checkPrivateDir(dir, false, WHAT))) return;
      try {
        await unlink(join(dir, name));
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw fsError('cannot delete', join(dir, name), err);
      }
    },

    async list(prefix = '') {
      if (!(await checkPrivateDir(dir, false, WHAT))) return [];
      return (await listNames(dir))
        .flatMap((n) => keyOfFileName(n) ?? [])
        .filter((k) => k.startsWith(prefix))
        .sort();
    },

    /** Checks ahead that the store can be written: asks for (and checks) the passphrase now. */
    async probe() {
      await checkPrivateDir(dir, true, WHAT);
      await unlockForWrite();
    },
  };
}

/**
 * The file store for a command: `<data dir>/store`, the passphrase from JITCTL_FILE_PASSPHRASE or
 * a prompt on the terminal. Never from argv (it would show in `ps` and shell history).
 */
export function openFileStore(ctx: Context, cache?: KeyCache): CredentialStore {
  return fileStore({
    dir: join(ctx.paths.dataDir, 'store'),
    passphrase: (creating) => filePassphrase(ctx, creating),
    cache,
  });
}

export async function filePassphrase(ctx: Context, creating: boolean): Promise<Secret> {
  const fromEnv = ctx.env.JITCTL_FILE_PASSPHRASE;
  if (fromEnv !== undefined) {
    if (fromEnv === '') {
      throw new AuthError('JITCTL_FILE_PASSPHRASE is set but empty', {
        hint: 'set it to the passphrase of the encrypted file store, or unset it to be asked',
      });
    }
    return new Secret(fromEnv);
  }
  if (!ctx.io.canPrompt()) {
    throw new AuthError(
      `the encrypted file store needs its passphrase, and ${ctx.ci ? 'CI=true means nothing is asked' : 'there is no terminal to ask for it'}`,
      {
        hint: 'set JITCTL_FILE_PASSPHRASE (e.g. from your CI secret store), or use the OS keychain (--store keychain)',
      },
    );
  }
  if (creating) {
    ctx.io.err(
      'Creating the encrypted credential store. Choose a passphrase; jitctl cannot recover it.\n',
    );
  }
  const first = await ctx.prompter.password(
    creating ? 'New passphrase for the file store:' : 'Passphrase for the file store:',
  );
  if (first === '') throw new AuthError('an empty passphrase is not allowed', { hint: undefined });
  if (creating) {
    const again = await ctx.prompter.password('Repeat the passphrase:');
    if (again !== first) {
      throw new AuthError('the two passphrases differ; nothing was stored', {
        hint: 'run the command again',
      });
    }
  }
  return new Secret(first);
}
