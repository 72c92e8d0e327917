import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StandInBroker, startStandInBroker } from '../auth/stand-in-broker.js';
import { runCli, type TestHome, testHome } from '../support/cli.js';
import { keyringAvailable, type PrivateKeyring, startKeyring } from '../support/keyring.js';

/**
 * `jitctl login` checks, before anyone signs in, that the credential store can keep the session:
 * with the keychain store on a machine without a usable Secret Service (no D-Bus session, a
 * locked keyring) it fails at once and says how to choose the file store, instead of letting the
 * person finish a device or browser sign-in for nothing. A real gnome-keyring in a private D-Bus
 * session (test/support/keyring.ts) plays the locked keyring.
 */

let broker: StandInBroker;
const homes: TestHome[] = [];
const home = (extra: Record<string, string> = {}) => {
  const h = testHome(extra);
  homes.push(h);
  return h;
};

beforeAll(async () => {
  broker = await startStandInBroker({ devicePollInterval: 1 });
});
afterAll(async () => {
  for (const h of homes) h.cleanup();
  await broker?.stop();
});

/** Whether the broker or its identity provider saw anything of a sign-in. */
const signInStarted = () =>
  broker.requests.some((r) => !r.endsWith('/v1/config') && !r.includes('.well-known'));

function expectFileStoreFix(stderr: string) {
  expect(stderr).toContain(`jitctl login --server ${broker.url} --store file`);
  expect(stderr).toContain('remembered for later commands');
  expect(stderr).not.toMatch(/user_code=|open this page/);
  expect(stderr).not.toContain('looks like a bug');
}

describe('jitctl login with a keychain that cannot keep the session', () => {
  it('no D-Bus session: fails at once, before any sign-in, saying how to use the file store', async () => {
    broker.requests.length = 0;
    const h = home();
    const started = Date.now();
    const r = await runCli(['login', '--server', broker.url], { env: h.env });
    expect(r.code, r.stderr).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.stderr).toContain(
      'error: cannot keep your session: the OS keychain is not available: no D-Bus session',
    );
    expect(r.stderr).toContain('dbus-run-session');
    expectFileStoreFix(r.stderr);
    expect(signInStarted()).toBe(false);
  });

  describe.skipIf(!keyringAvailable())('with a real gnome-keyring', () => {
    let keyring: PrivateKeyring;
    beforeAll(async () => {
      keyring = await startKeyring();
    });
    afterAll(async () => {
      await keyring?.stop();
    });

    it('a locked keyring: fails at once with how to unlock it or use the file store', async () => {
      await keyring.stopDaemon();
      await keyring.startDaemon({ unlock: false });
      broker.requests.length = 0;
      const h = home(keyring.env);
      const r = await runCli(['login', '--server', broker.url], { env: h.env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(
        'error: cannot keep your session: the OS keychain is locked and could not be unlocked',
      );
      expect(r.stderr).toContain('gnome-keyring-daemon --unlock');
      expectFileStoreFix(r.stderr);
      expect(signInStarted()).toBe(false);
    });

    it('no Secret Service on the bus: the same, with how to start one', async () => {
      await keyring.stopDaemon();
      broker.requests.length = 0;
      const h = home(keyring.env);
      const r = await runCli(['login', '--server', broker.url], { env: h.env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(
        'error: cannot keep your session: the OS keychain is not available',
      );
      expect(r.stderr).toContain('start a Secret Service');
      expectFileStoreFix(r.stderr);
      expect(signInStarted()).toBe(false);
    });

    it('an unlocked keyring: the sign-in starts, and the probe leaves no entry behind', async () => {
      await keyring.startDaemon({ unlock: true });
      broker.requests.length = 0;
      const h = home(keyring.env);
      const { spawnCli } = await import('../support/cli.js');
      const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
      await cli.waitForOutput(/user_code=/);
      cli.child.kill('SIGINT');
      const r = await cli.done;
      expect(r.code).toBe(130);
      const { keychainStore } = await import('../../src/credentials/keychain-store.js');
      // The native library reads the bus address from this process's own environment.
      process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
      try {
        expect(await keychainStore({ env: keyring.env }).list()).toEqual([]);
      } finally {
        delete process.env.DBUS_SESSION_BUS_ADDRESS;
      }
    });
  });
});
