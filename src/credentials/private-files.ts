import { randomBytes } from 'node:crypto';
import { constants, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ExitCode, JitError } from '../cli/errors.js';

/**
 * Files that hold secrets, kept the way ssh keeps private keys: 0600 files in a 0700 directory,
 * and anything looser refused with the command that fixes it rather than fixed behind the user's
 * back. Used by the encrypted file store and by the unlock agent's socket directory.
 */

/**
 * A place for secrets that others could reach, or that cannot be used safely (loose modes,
 * another owner, a socket path the kernel would cut): refused, never worked around.
 */
export class UnsafePathError extends JitError {
  override name = 'UnsafePathError';
}

/** Files larger than this are not ours (store entries are JSON records of a few KiB). */
export const MAX_FILE_BYTES = 1024 * 1024;

/**
 * Throws unless `dir` is a private directory of this user (a directory, not a symlink, no access
 * for group or others, owned by this uid); `create` makes it (0700) when missing. Returns false
 * when it is missing and not created. `what` names it in messages ("the credential store").
 */
export async function checkPrivateDir(
  dir: string,
  create: boolean,
  what: string,
): Promise<boolean> {
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
    throw new UnsafePathError(`${what} ${dir} is not a directory`, ExitCode.Error, {
      hint: 'move it away; jitctl creates the directory itself',
    });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UnsafePathError(
      `refusing to use ${what} ${dir}: group or others can access it (mode ${modeOf(st.mode)})`,
      ExitCode.Error,
      { hint: `run \`chmod 700 ${dir}\`` },
    );
  }
  const uid = ownUid();
  if (uid !== undefined && st.uid !== uid) {
    throw new UnsafePathError(
      `refusing to use ${what} ${dir}: it belongs to another user`,
      ExitCode.Error,
      {
        hint: `remove it, or run jitctl as its owner (uid ${st.uid})`,
      },
    );
  }
  return true;
}

/** This process's uid, or undefined where there is none (Windows). */
export function ownUid(): number | undefined {
  try {
    const { uid } = userInfo();
    return uid >= 0 ? uid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a private file: undefined when absent (or, unless `strict`, not a plain file or a
 * symlink); refuses one that group or others can access. O_NOFOLLOW: a symlink is never followed.
 */
export async function readPrivate(path: string, strict: boolean): Promise<string | undefined> {
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
        throw new JitError(`${path} is not a regular file`, ExitCode.Error, { hint: 'remove it' });
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
}

/** Writes a new 0600 file under a temporary name in `dir` and syncs it; returns its path. */
export async function writeTemp(dir: string, name: string, text: string): Promise<string> {
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
}

/** The names in `dir` (none when it does not exist). */
export async function listNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw fsError('cannot list', dir, err);
  }
}

export function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export function modeOf(mode: number): string {
  return (mode & 0o777).toString(8).padStart(3, '0');
}

export function fsError(verb: string, path: string, err: unknown): JitError {
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
