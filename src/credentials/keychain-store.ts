import { platform as osPlatform } from 'node:os';
import type { Context, Env } from '../cli/context.js';
import { FALLBACK_HINT, KEYCHAIN_FIXES, KeychainError } from './keychain-errors.js';
import type { CredentialStore } from './store.js';

export { KeychainError } from './keychain-errors.js';

/**
 * The OS keychain (the default store) through @napi-rs/keyring: macOS Keychain, Windows
 * Credential Manager, the Secret Service on Linux (gnome-keyring, KWallet, KeePassXC). One entry
 * per key: service `jitctl`, account = the key.
 *
 * On Linux the entries are pinned to the Secret Service. Left to itself the library falls back
 * to the kernel's keyutils keyring when no Secret Service answers: memory that is gone at the
 * next reboot, chosen without telling anyone. jitctl's rule is no silent fallback of any kind, so
 * a missing Secret Service is an error that says how to choose the file store instead.
 *
 * Every call is bounded by a timeout (10 s) so that a locked keyring waiting on a prompt, or a
 * daemon that stopped answering, ends in an error instead of a hung jitctl. The library's own
 * AbortSignal does not help here: it cancels only work that has not started.
 */

type Keyring = typeof import('@napi-rs/keyring');

export const KEYCHAIN_SERVICE = 'jitctl';
export const KEYCHAIN_TIMEOUT_MS = 10_000;

export interface KeychainOptions {
  /** The environment the native library will see (it reads the process's own). */
  env: Env;
  /** `jitctl` unless a test isolates itself. */
  service?: string;
  timeoutMs?: number;
  platform?: NodeJS.Platform;
}

export function keychainStore(options: KeychainOptions): CredentialStore {
  const service = options.service ?? KEYCHAIN_SERVICE;
  const timeoutMs = options.timeoutMs ?? KEYCHAIN_TIMEOUT_MS;
  const platform = options.platform ?? osPlatform();
  const entryOptions = { linux: { store: 'secret-service' as const } };
  let lib: Promise<Keyring> | undefined;

  const load = (): Promise<Keyring> => {
    lib ??= import('@napi-rs/keyring').catch((err: unknown) => {
      lib = undefined;
      throw new KeychainError(
        'unavailable',
        `the OS keychain is not available: its native module did not load (${shortMessage(err)})`,
        `reinstall jitctl for this platform, ${FALLBACK_HINT}`,
        err,
      );
    });
    return lib;
  };

  /**
   * Runs one keychain operation under the timeout. Checked first, without the library: on Linux
   * without a session bus, libdbus would try to autolaunch a dbus-daemon (printing noise about
   * X11) before failing.
   */
  const call = async <T>(what: string, op: (k: Keyring) => Promise<T>): Promise<T> => {
    if (platform === 'linux' && !options.env.DBUS_SESSION_BUS_ADDRESS) {
      throw new KeychainError(
        'no-bus',
        'the OS keychain is not available: no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set), so no Secret Service can be reached',
        `${KEYCHAIN_FIXES['no-bus']}, ${FALLBACK_HINT}`,
      );
    }
    const k = await load();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutSignal()), timeoutMs);
    });
    try {
      return await Promise.race([op(k), timeout]);
    } catch (err) {
      throw classify(err, what, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  };

  const entry = (k: Keyring, key: string) => new k.AsyncEntry(service, key, entryOptions);

  return {
    kind: 'keychain',
    description:
      platform === 'darwin'
        ? 'OS keychain (macOS Keychain)'
        : platform === 'win32'
          ? 'OS keychain (Windows Credential Manager)'
          : 'OS keychain (Secret Service)',

    async get(key) {
      const value = await call('read from', (k) => entry(k, key).getPassword());
      return value ?? undefined;
    },

    async set(key, value) {
      await call('write to', (k) => entry(k, key).setPassword(value));
    },

    async delete(key) {
      await call('delete from', (k) => entry(k, key).deletePassword());
    },

    /**
     * Writes and removes a probe entry: the one way to learn before a sign-in that entries can be
     * kept (a locked keyring may still answer searches).
     */
    async probe() {
      const probe = 'jitctl-availability-probe';
      await call('write to', (k) => entry(k, probe).setPassword('probe'));
      await call('write to', (k) => entry(k, probe).deletePassword());
    },

    async list(prefix = '') {
      const found = await call('list', async (k) => {
        // Opening an entry first makes "no Secret Service" fail the same bounded way as the
        // other calls before the search, whose D-Bus client has no reply timeout of its own.
        entry(k, 'jitctl-availability-probe');
        return k.findCredentialsAsync(service);
      });
      return [...new Set(found.map((c) => c.account))].filter((a) => a.startsWith(prefix)).sort();
    },
  };
}

export function openKeychainStore(ctx: Context): CredentialStore {
  return keychainStore({ env: ctx.env });
}

class TimeoutSignal extends Error {}

/** One clear error per cause; the library's messages vary by platform and backend. */
function classify(err: unknown, what: string, timeoutMs: number): KeychainError {
  if (err instanceof KeychainError) return err;
  const text = shortMessage(err);
  const seconds = Math.round(timeoutMs / 1000);
  if (err instanceof TimeoutSignal || /did not receive a reply|timed? ?out/i.test(text)) {
    // Ours (the race) or D-Bus's own reply timeout, which is shorter and cuts in first.
    const within = err instanceof TimeoutSignal ? ` within ${seconds} s` : '';
    return new KeychainError(
      'timeout',
      `the OS keychain did not answer${within} (trying to ${what} it)`,
      `${KEYCHAIN_FIXES.timeout}, ${FALLBACK_HINT}`,
      err,
    );
  }
  if (/locked|prompt was dismissed|user interaction|interaction not allowed/i.test(text)) {
    return new KeychainError(
      'locked',
      `the OS keychain is locked and could not be unlocked (trying to ${what} it)`,
      `${KEYCHAIN_FIXES.locked}, ${FALLBACK_HINT}`,
      err,
    );
  }
  return new KeychainError(
    'unavailable',
    `the OS keychain is not available (trying to ${what} it): ${text}`,
    `${KEYCHAIN_FIXES.unavailable}, ${FALLBACK_HINT}`,
    err,
  );
}

function shortMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}
