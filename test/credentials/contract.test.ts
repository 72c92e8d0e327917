import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { fileStore } from '../../src/credentials/file-store.js';
import { keychainStore } from '../../src/credentials/keychain-store.js';
import { memoryStore } from '../../src/credentials/memory-store.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import { type PrivateKeyring, startKeyring } from '../support/keyring.js';

/**
 * One contract, every backend (workers-sdk's key providers): whatever store a user picks, jitctl
 * sees the same behaviour. Each case gets a fresh, empty store.
 */
interface Backend {
  name: string;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  fresh(): Promise<CredentialStore>;
}

const tmp = mkdtempSync(join(tmpdir(), 'jitctl-contract-'));
let fileCount = 0;
let keyring: PrivateKeyring | undefined;
let keychainCount = 0;

const backends: Backend[] = [
  { name: 'memory', fresh: async () => memoryStore() },
  {
    name: 'file',
    teardown: async () => rmSync(tmp, { recursive: true, force: true }),
    // A lower PBES2 count keeps 100+ encryptions quick; file-store.test.ts uses the real one.
    fresh: async () =>
      fileStore({
        dir: join(tmp, `store-${++fileCount}`),
        passphrase: async () => new Secret('contract passphrase'),
        p2c: 1000,
      }),
  },
  {
    // A real gnome-keyring in a private D-Bus session; each case uses its own service name.
    name: 'keychain',
    setup: async () => {
      keyring = await startKeyring();
      process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
    },
    teardown: async () => {
      await keyring?.stop();
      delete process.env.DBUS_SESSION_BUS_ADDRESS;
    },
    fresh: async () =>
      keychainStore({ env: process.env, service: `jitctl-contract-${++keychainCount}` }),
  },
];

const ODD_KEYS = [
  'https://jit.example.com|credential|prod-deploy',
  'a/b/c',
  '../../etc/passwd',
  'host:8443|session',
  'ключ|роль',
  '鍵|役割',
  'emoji 🔑 key',
  'e\u0301 combining',
  'spaces and\ttabs',
  '.hidden',
  'passphrase-check',
  'x',
];

for (const backend of backends) {
  describe(`credential store contract: ${backend.name}`, () => {
    let store: CredentialStore;
    beforeAll(async () => backend.setup?.());
    afterAll(async () => backend.teardown?.());
    const fresh = async () => {
      store = await backend.fresh();
      return store;
    };

    it('answers undefined for an absent key and an empty list for an empty store', async () => {
      const s = await fresh();
      expect(await s.get('nothing|here')).toBeUndefined();
      expect(await s.list()).toEqual([]);
      expect(await s.list('nothing')).toEqual([]);
    });

    it('gets what was set, and the newest value after an overwrite', async () => {
      const s = await fresh();
      await s.set('srv|session', '{"v":1,"a":"first"}');
      expect(await s.get('srv|session')).toBe('{"v":1,"a":"first"}');
      await s.set('srv|session', '{"v":1,"a":"second"}');
      expect(await s.get('srv|session')).toBe('{"v":1,"a":"second"}');
      expect(await s.list()).toEqual(['srv|session']);
    });

    it('deletes idempotently, including keys that never existed', async () => {
      const s = await fresh();
      await s.set('k1', 'v1');
      await s.set('k2', 'v2');
      await s.delete('k1');
      expect(await s.get('k1')).toBeUndefined();
      expect(await s.get('k2')).toBe('v2');
      await s.delete('k1');
      await s.delete('never-set');
      expect(await s.list()).toEqual(['k2']);
    });

    it('lists by prefix, exactly', async () => {
      const s = await fresh();
      const keys = [
        'https://a.example|session',
        'https://a.example|credential|prod-deploy',
        'https://a.example|credential|db-read',
        'https://a.example.evil|session',
        'https://b.example|session',
      ];
      for (const k of keys) await s.set(k, `value of ${k}`);
      expect((await s.list()).sort()).toEqual([...keys].sort());
      expect((await s.list('')).sort()).toEqual([...keys].sort());
      expect((await s.list('https://a.example|')).sort()).toEqual(
        [keys[0], keys[1], keys[2]].sort(),
      );
      expect((await s.list('https://a.example|credential|')).sort()).toEqual(
        [keys[1], keys[2]].sort(),
      );
      expect(await s.list('https://c.example|')).toEqual([]);
    });

    it('keeps keys with |, /, :, dots and unicode apart and intact', async () => {
      const s = await fresh();
      for (const [i, k] of ODD_KEYS.entries()) await s.set(k, `v${i} ${k}`);
      expect((await s.list()).sort()).toEqual([...ODD_KEYS].sort());
      for (const [i, k] of ODD_KEYS.entries()) expect(await s.get(k)).toBe(`v${i} ${k}`);
      expect((await s.list('鍵')).sort()).toEqual(['鍵|役割']);
    });

    it('round-trips values with unicode, quotes, newlines and 16 KiB of data', async () => {
      const s = await fresh();
      const odd = 'line1\nline2\r\n"quoted" \'single\' \\ back \u0000 nul ✓ 🔑';
      await s.set('odd', odd);
      expect(await s.get('odd')).toBe(odd);
      const big = Array.from({ length: 16 * 1024 }, (_, i) =>
        String.fromCharCode(33 + ((i * 7919) % 94)),
      ).join('');
      await s.set('big', big);
      expect(await s.get('big')).toBe(big);
      expect((await s.get('big'))?.length).toBe(16 * 1024);
    });

    it('holds many entries', async () => {
      const s = await fresh();
      const keys = Array.from({ length: 60 }, (_, i) => `srv|credential|role-${i}`);
      for (const k of keys) await s.set(k, `token-for-${k}`);
      expect((await s.list('srv|credential|')).sort()).toEqual([...keys].sort());
      for (const k of keys) expect(await s.get(k)).toBe(`token-for-${k}`);
    });

    it('survives concurrent sets: every key lands, and one write of a contested key wins', async () => {
      const s = await fresh();
      const distinct = Array.from({ length: 12 }, (_, i) => `par|${i}`);
      const contested = Array.from({ length: 8 }, (_, i) => `contender-${i}`);
      await Promise.all([
        ...distinct.map((k) => s.set(k, `value ${k}`)),
        ...contested.map((v) => s.set('par|same', v)),
      ]);
      expect((await s.list('par|')).sort()).toEqual([...distinct, 'par|same'].sort());
      for (const k of distinct) expect(await s.get(k)).toBe(`value ${k}`);
      expect(contested).toContain(await s.get('par|same'));
    });
  });
}
