import { randomBytes } from 'node:crypto';
import { constants, link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { Secret } from '../api/secret.js';
import type { Context } from '../cli/context.js';
import { AuthError, ExitCode, JitError } from '../cli/errors.js';
import { fileNameOf, keyOfFileName, MAX_KEY_BYTES } from './file-name.js';
import type { CredentialStore } from './store.js';

/**
 * The encrypted file store, used only when chosen (`--store file`, config `store`, or
 * `JITCTL_STORE=file`): one compact JWE per entry (RFC 7516), the key wrapped with PBES2 from a
 * passphrase (RFC 7518 §4.8) and the value sealed with AES-256-GCM. Files are 0600 in a 0700
 * directory; anything looser is refused rather than fixed behind the user's back (the same rule
 * as ssh's private keys).
 *
 * A small verifier JWE written on first use tells a wrong passphrase (the verifier does not open)
 * from a damaged or foreign entry (the verifier opens, the entry does not): the first is an error,
 * the second counts as absent. Each entry names its own key in its protected header, which
 * AES-GCM authenticates, so a file copied or renamed onto another key's name is foreign too.
 */

/**
 * PBKDF2-HMAC-SHA512 iterations. The trade-off: every `jitctl exec` pays one derivation at
 * start-up, and issue #6 holds `exec -- true` to 1.8× a bare `node`. OWASP's 210,000 costs about
 * 0.25 s here, which no command wrapper can afford on every call; 20,000 costs about 24 ms on this
 * machine (2 cores, Node 20) and still makes each offline guess 20,000 HMAC-SHA512 rounds. The
 * passphrase's own strength matters far more than this factor of ten, and the files are 0600 in a
 * 0700 directory anyway. jose writes the count into each JWE header (`p2c`), so raising it later
 * re-encrypts entries as they are rewritten and old entries keep opening. docs/credentials.md has
 * the measurement.
 */
export const FILE_STORE_P2C = 20_000;
/** Entries with a larger `p2c` are refused: a planted header cannot make jitctl spin for minutes. */
const MAX_P2C = 1_000_000;
const ALG = 'PBES2-HS512+A256KW';
const ENC = 'A256GCM';
/** Protected-header parameter naming the entry's key. */
const KEY_HEADER = 'jitctl_key';
const VERIFIER = 'passphrase-check';
const VERIFIER_TEXT = 'jitctl file store v1';
/** Values are JSON records of a few KiB; anything much larger is not ours. */
const MAX_FILE_BYTES = 1024 * 1024;

export interface FileStoreOptions {
  /** The store's directory (0700): `<data dir>/store`. */
  dir: string;
  /**
   * The passphrase, asked for at most once and only when something must be decrypted or written
   * (`list` and `delete` need none). `creating`: the store is new, so a prompt asks twice.
   */
  passphrase(creating: boolean): Promise<Secret>;
  /** PBES2 iterations for new entries (tests may lower it). */
  p2c?: number;
}

type Opened = { status: 'ok'; value: string } | { status: 'foreign' } | { status: 'failed' };

export function fileStore(options: FileStoreOptions): CredentialStore {
  const { dir } = options;
  const p2c = options.p2c ?? FILE_STORE_P2C;
  const verifierPath = join(dir, VERIFIER);
  let passphrase: Promise<Uint8Array> | undefined;
  let verified: Promise<void> | undefined;

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

  /** Decrypts one JWE; never throws for bad content, only reports what happened. */
  const openJwe = async (text: string, expectedKey: string | null): Promise<Opened> => {
    const pass = await getPassphrase(false);
    try {
      const { plaintext, protectedHeader } = await compactDecrypt(text.trim(), pass, {
        keyManagementAlgorithms: [ALG],
        contentEncryptionAlgorithms: [ENC],
        maxPBES2Count: MAX_P2C,
      });
      if (protectedHeader[KEY_HEADER] !== (expectedKey ?? undefined)) return { status: 'foreign' };
      return { status: 'ok', value: new TextDecoder().decode(plaintext) };
    } catch {
      return { status: 'failed' };
    }
  };

  const seal = async (value: string, key: string | null, creating: boolean): Promise<string> => {
    const pass = await getPassphrase(creating);
    return new CompactEncrypt(new TextEncoder().encode(value))
      .setProtectedHeader({ alg: ALG, enc: ENC, ...(key === null ? {} : { [KEY_HEADER]: key }) })
      .setKeyManagementParameters({ p2c })
      .encrypt(pass);
  };

  /** Throws unless the store's directory is private; `create` makes it when missing. */
  const checkDir = async (create: boolean): Promise<boolean> => {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(dir);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw fsError('cannot use', dir, err);
      if (!create) return false;
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        st = await stat(dir);
      } catch (e) {
        throw fsError('cannot create', dir, e);
      }
    }
    if (!st.isDirectory()) {
      throw new JitError(`the credential store ${dir} is not a directory`, ExitCode.Error, {
        hint: `move it away; jitctl creates the directory itself`,
      });
    }
    if ((st.mode & 0o077) !== 0) {
      throw new JitError(
        `refusing to use the credential store ${dir}: group or others can access it (mode ${modeOf(st.mode)})`,
        ExitCode.Error,
        { hint: `run \`chmod 700 ${dir}\`` },
      );
    }
    return true;
  };

  const verifyOnce = async (): Promise<void> => {
    const text = await readPrivate(verifierPath, true);
    if (text !== undefined) {
      const opened = await openJwe(text, null);
      if (opened.status !== 'ok' || opened.value !== VERIFIER_TEXT) throw wrongPassphrase();
      return;
    }
    // No verifier: a new store, unless entries exist (the verifier was removed); then the
    // passphrase must open one of them before it becomes the store's passphrase.
    const existing = await entryNames();
    for (const name of existing) {
      const entry = await readPrivate(join(dir, name), false);
      if (entry === undefined) continue;
      const opened = await openJwe(entry, keyOfFileName(name) ?? '');
      if (opened.status === 'failed') throw wrongPassphrase();
      break;
    }
    const sealed = await seal(VERIFIER_TEXT, null, existing.length === 0);
    // link() creates the verifier only if no other process did so first; then check theirs.
    const tmp = await writeTemp(VERIFIER, sealed);
    try {
      await link(tmp, verifierPath);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw fsError('cannot write', verifierPath, err);
      const theirs = await readPrivate(verifierPath, true);
      const opened = theirs === undefined ? undefined : await openJwe(theirs, null);
      if (opened?.status !== 'ok' || opened.value !== VERIFIER_TEXT) throw wrongPassphrase();
    } finally {
      await unlink(tmp).catch(() => {});
    }
  };

  const verify = (): Promise<void> => {
    verified ??= verifyOnce().catch((err: unknown) => {
      verified = undefined;
      throw err;
    });
    return verified;
  };

  /**
   * Reads a file of the store: undefined when absent (or, for entries, not a plain file);
   * refuses one that group or others can read. O_NOFOLLOW: a symlink is never followed.
   */
  const readPrivate = async (path: string, strict: boolean): Promise<string | undefined> => {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP' && !strict) return undefined;
      throw fsError('cannot read', path, err);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        if (strict)
          throw new JitError(`${path} is not a regular file`, ExitCode.Error, {
            hint: 'remove it',
          });
        return undefined;
      }
      if ((st.mode & 0o077) !== 0) {
        throw new JitError(
          `refusing to read ${path}: group or others can access it (mode ${modeOf(st.mode)})`,
          ExitCode.Error,
          { hint: `run \`chmod 600 ${path}\`` },
        );
      }
      if (st.size > MAX_FILE_BYTES) return undefined;
      return await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  };

  /** Writes a new 0600 file under a temporary name in the store's directory and syncs it. */
  const writeTemp = async (name: string, text: string): Promise<string> => {
    const tmp = join(dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw fsError('cannot write', tmp, err);
    }
    return tmp;
  };

  const entryNames = async (): Promise<string[]> => {
    try {
      return (await readdir(dir)).filter((n) => keyOfFileName(n) !== undefined);
    } catch (err) {
      if (errno(err) === 'ENOENT') return [];
      throw fsError('cannot list', dir, err);
    }
  };

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
      if (!(await checkDir(false))) return undefined;
      const text = await readPrivate(join(dir, name), false);
      if (text === undefined) return undefined;
      const opened = await openJwe(text, key);
      if (opened.status === 'ok') return opened.value;
      // The entry does not open: a wrong passphrase is an error, a bad entry is absent.
      await verify();
      return undefined;
    },

    async set(key, value) {
      const name = nameOf(key);
      await checkDir(true);
      await verify();
      const tmp = await writeTemp(name, await seal(value, key, false));
      try {
        await rename(tmp, join(dir, name));
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw fsError('cannot write', join(dir, name), err);
      }
    },

    /**
     * Checks the passphrase against the store ahead of a write that will come after a long wait
     * (`jitctl request` keeping its credential), so that the write after an approval costs one
     * key derivation instead of two. Never prompts and never creates the store.
     */
    async prepareWrite() {
      if (passphrase === undefined || !(await checkDir(false))) return;
      await verify();
    },

    async delete(key) {
      const name = nameOf(key);
      if (!(await checkDir(false))) return;
      try {
        await unlink(join(dir, name));
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw fsError('cannot delete', join(dir, name), err);
      }
    },

    async list(prefix = '') {
      if (!(await checkDir(false))) return [];
      return (await entryNames())
        .map((n) => keyOfFileName(n) as string)
        .filter((k) => k.startsWith(prefix))
        .sort();
    },
  };
}

/**
 * The file store for a command: `<data dir>/store`, the passphrase from JITCTL_FILE_PASSPHRASE or
 * a prompt on the terminal. Never from argv (it would show in `ps` and shell history).
 */
export function openFileStore(ctx: Context): CredentialStore {
  return fileStore({
    dir: join(ctx.paths.dataDir, 'store'),
    passphrase: (creating) => filePassphrase(ctx, creating),
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

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function modeOf(mode: number): string {
  return (mode & 0o777).toString(8).padStart(3, '0');
}

function fsError(verb: string, path: string, err: unknown): JitError {
  if (err instanceof JitError) return err;
  const code = errno(err);
  return new JitError(`${verb} ${path}: ${code ?? (err as Error).message}`, ExitCode.Error, {
    hint:
      code === 'EACCES' || code === 'EPERM'
        ? `check that you own ${path} (chown/chmod)`
        : undefined,
    cause: err,
  });
}
