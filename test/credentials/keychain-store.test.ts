import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { ExitCode } from '../../src/cli/errors.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { KeychainError, keychainStore } from '../../src/credentials/keychain-store.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import { type PrivateKeyring, startKeyring } from '../support/keyring.js';

/**
 * The keychain backend against a real gnome-keyring in a private D-Bus session, and every way it
 * can be unusable: no bus, no Secret Service, locked, not answering. The library reads the bus
 * address from this process's environment, so it is set before the first call.
 */

let keyring: PrivateKeyring;
let n = 0;
const service = () => `jitctl-test-${process.pid}-${++n}`;

beforeAll(async () => {
  keyring = await startKeyring();
  process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
});
afterAll(async () => {
  await keyring?.stop();
  delete process.env.DBUS_SESSION_BUS_ADDRESS;
});

async function failure(p: Promise<unknown>): Promise<KeychainError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeychainError);
    return err as KeychainError;
  }
  throw new Error('expected the keychain to fail');
}

const allOps = (s: CredentialStore) => [
  () => s.get('k'),
  () => s.set('k', 'v'),
  () => s.delete('k'),
  () => s.list(),
];

describe('keychain store', () => {
  it('is the default kind behind openStore, described as the Secret Service', async () => {
    const ctx = createContext({ env: process.env, io: testIO() });
    const s = await openStore(ctx, 'keychain');
    expect(s.kind).toBe('keychain');
    expect(s.description).toBe('OS keychain (Secret Service)');
  });

  it('keeps entries in the keyring daemon: they outlive the daemon restarting', async () => {
    const svc = service();
    await keychainStore({ env: process.env, service: svc }).set('srv|session', 'kept');
    await keyring.stopDaemon();
    await keyring.startDaemon({ unlock: true });
    const again = keychainStore({ env: process.env, service: svc });
    expect(await again.get('srv|session')).toBe('kept');
    expect(await again.list()).toEqual(['srv|session']);
  });

  it('lists only its own service', async () => {
    const a = keychainStore({ env: process.env, service: service() });
    const b = keychainStore({ env: process.env, service: service() });
    await a.set('x|1', 'a');
    await b.set('x|2', 'b');
    expect(await a.list()).toEqual(['x|1']);
    expect(await b.list('x|')).toEqual(['x|2']);
  });

  it('without a D-Bus session: fails fast with the cause and the file-store way out', async () => {
    const s = keychainStore({ env: {}, service: service(), platform: 'linux' });
    for (const op of allOps(s)) {
      const err = await failure(op());
      expect(err.reason).toBe('no-bus');
      expect(err.exitCode).toBe(ExitCode.Error);
      expect(err.message).toBe(
        'the OS keychain is not available: no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set), so no Secret Service can be reached',
      );
      expect(err.hint).toContain('--store file');
      expect(err.hint).toContain('JITCTL_STORE=file');
      expect(err.hint).toContain('JITCTL_FILE_PASSPHRASE');
    }
  });

  describe('with the daemon stopped, locked or paused', () => {
    const svc = service();
    beforeAll(async () => {
      await keychainStore({ env: process.env, service: svc }).set('k', 'before');
    });
    afterAll(async () => {
      keyring.resume();
      await keyring.stopDaemon();
      await keyring.startDaemon({ unlock: true });
    });

    it('no Secret Service on the bus: unavailable (the kernel keyring is never used instead)', async () => {
      await keyring.stopDaemon();
      const s = keychainStore({ env: process.env, service: svc });
      for (const op of allOps(s)) {
        const err = await failure(op());
        expect(err.reason).toBe('unavailable');
        expect(err.message).toMatch(/^the OS keychain is not available \(trying to \w+/);
        expect(err.hint).toContain('--store file');
      }
    });

    it('a locked keyring: says it is locked and how to unlock or switch', async () => {
      await keyring.startDaemon({ unlock: false });
      const s = keychainStore({ env: process.env, service: svc });
      for (const op of [() => s.get('k'), () => s.set('k', 'after'), () => s.list()]) {
        const err = await failure(op());
        expect(err.reason).toBe('locked');
        expect(err.message).toMatch(/^the OS keychain is locked and could not be unlocked/);
        expect(err.hint).toContain('gnome-keyring-daemon --unlock');
        expect(err.hint).toContain('--store file');
      }
      await keyring.stopDaemon();
      await keyring.startDaemon({ unlock: true });
      expect(await s.get('k')).toBe('before');
    });

    it('a daemon that stopped answering: a timeout error, not a hang', async () => {
      const s = keychainStore({ env: process.env, service: svc, timeoutMs: 500 });
      keyring.pause();
      try {
        for (const op of [() => s.get('k'), () => s.list()]) {
          const err = await failure(op());
          expect(err.reason).toBe('timeout');
          expect(err.message).toMatch(
            /^the OS keychain did not answer( within \d+ s)? \(trying to (read from|list) it\)$/,
          );
          expect(err.hint).toContain('--store file');
        }
      } finally {
        keyring.resume();
      }
      expect(await s.get('k')).toBe('before');
    });
  });
});
