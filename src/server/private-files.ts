import { closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';

/**
 * Files that hold secrets (the SQLite database with the credential signing key, a key file) are
 * created 0600 in directories created 0700, and an existing one that other local users can read
 * or write stops the broker with the command that fixes it: anyone who reads the key can mint
 * credentials that Kubernetes or Vault accept. Mode bits mean nothing on Windows, so there the
 * checks are skipped.
 */

export class PrivateFileError extends Error {
  override name = 'PrivateFileError';
}

const POSIX = process.platform !== 'win32';

/** Creates `dir` (and its parents) 0700 if missing; an existing directory is left as it is. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Creates `path` empty and 0600 if it does not exist (never truncates an existing file). */
export function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Throws when any of `paths` that exists grants the group or others any access. `holds` says
 * what is at stake, e.g. "the credential signing key".
 */
export function refuseSharedFiles(paths: readonly string[], holds: string): void {
  if (!POSIX) return;
  const shared: { path: string; mode: number }[] = [];
  for (const path of paths) {
    let mode: number;
    try {
      mode = statSync(path).mode;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if ((mode & 0o077) !== 0) shared.push({ path, mode: mode & 0o777 });
  }
  if (shared.length === 0) return;
  const [first] = shared;
  const what =
    shared.length === 1
      ? `${first!.path} is readable or writable by other users (mode ${octal(first!.mode)})`
      : `${shared.map((s) => `${s.path} (mode ${octal(s.mode)})`).join(', ')} are readable or writable by other users`;
  throw new PrivateFileError(
    `${what}, and ${shared.length === 1 ? 'it holds' : 'they hold'} ${holds}: ` +
      `run \`chmod 600 ${shared.map((s) => shellQuote(s.path)).join(' ')}\` and start again`,
  );
}

const octal = (mode: number) => `0${mode.toString(8).padStart(3, '0')}`;

/** A path as one shell word, for a command the operator copies. */
export function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
