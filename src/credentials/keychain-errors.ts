import { ExitCode, JitError } from '../cli/errors.js';

/**
 * Why the OS keychain cannot be used, and what fixes each cause. Apart from keychain-store.ts so
 * that `jitctl login` can word its own hint without loading the keychain backend.
 */

export type KeychainProblem = 'no-bus' | 'unavailable' | 'locked' | 'timeout';

/** What the person can do about each cause, short of choosing another store. */
export const KEYCHAIN_FIXES: Record<KeychainProblem, string> = {
  'no-bus':
    'run jitctl inside a desktop or `dbus-run-session` session with gnome-keyring or KWallet',
  unavailable: 'start a Secret Service (gnome-keyring, KWallet)',
  locked: 'unlock it (sign in to your desktop session, or `gnome-keyring-daemon --unlock`)',
  timeout: 'check that the keyring daemon is running and unlocked',
};

export const FALLBACK_HINT =
  'or use the encrypted file store: --store file (or JITCTL_STORE=file, with JITCTL_FILE_PASSPHRASE ' +
  'for non-interactive use)';

/** The keychain cannot be used right now: unavailable, locked, or not answering. */
export class KeychainError extends JitError {
  override name = 'KeychainError';
  constructor(
    readonly reason: KeychainProblem,
    message: string,
    hint: string,
    cause?: unknown,
  ) {
    super(message, ExitCode.Error, { hint, cause });
  }
}
