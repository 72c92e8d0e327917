import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactEncrypt, decodeProtectedHeader } from 'jose';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { createContext, type Env } from '../../src/cli/context.js';
import { AuthError, ExitCode, JitError } from '../../src/cli/errors.js';
import { testIO } from '../../src/cli/io.js';
import type { Prompter } from '../../src/cli/prompt.js';
import { fileNameOf } from '../../src/credentials/file-name.js';
import {
  FILE_STORE_P2C,
  filePassphrase,
  fileStore,
  openFileStore,
} from '../../src/credentials/file-store.js';
import { openStore } from '../../src/credentials/index.js';

const root = mkdtempSync(join(tmpdir(), 'jitctl-file-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(root, `case-${++n}`, 'store');

/** A store over `dir` with a fixed passphrase; counts how often the passphrase was needed. */
function store(dir: string, passphrase = 'correct horse battery staple', p2c = 1000) {
  const asked = { count: 0, creating: [] as boolean[] };
  const s = fileStore({
    dir,
    p2c,
    passphrase: async (creating) => {
      asked.count++;
      asked.creating.push(creating);
      return new Secret(passphrase);
    },
  });
  return Object.assign(s, { asked });
}

const KEY = 'https://jit.example.com|credential|prod-deploy';
const VALUE = '{"v":1,"token":"eyJ-secret-token-value"}';
const modeOf = (p: string) => statSync(p).mode & 0o777;

async function rejection(p: Promise<unknown>): Promise<JitError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(JitError);
    return err as JitError;
  }
  throw new Error('expected a rejection');
}

describe('file store: on disk', () => {
  it('writes one 0600 JWE per entry in a 0700 directory, named reversibly, value not in clear', async () => {
    const dir = freshDir();
    const previous = process.umask(0); // even a permissive umask must not loosen the modes
    try {
      const s = store(dir, 'pw', FILE_STORE_P2C);
      await s.set(KEY, VALUE);
    } finally {
      process.umask(previous);
    }
    expect(modeOf(dir)).toBe(0o700);
    const name = fileNameOf(KEY)!;
    expect(readdirSync(dir).sort()).toEqual([name, 'store-key'].sort());
    for (const f of readdirSync(dir)) expect(modeOf(join(dir, f))).toBe(0o600);
    const text = readFileSync(join(dir, name), 'utf8');
    expect(text.split('.')).toHaveLength(5);
    expect(text).not.toContain('secret-token');
    expect(Buffer.from(text).includes(Buffer.from('eyJ-secret'))).toBe(false);
    // The key file: the store's key wrapped with the passphrase (PBES2, the real count).
    const keyHeader = decodeProtectedHeader(readFileSync(join(dir, 'store-key'), 'utf8'));
    expect(keyHeader).toMatchObject({
      alg: 'PBES2-HS512+A256KW',
      enc: 'A256GCM',
      p2c: FILE_STORE_P2C,
      cty: 'jitctl-store-key',
    });
    expect(typeof keyHeader.p2s).toBe('string');
    expect(keyHeader.kid).toMatch(/^[\w-]{22}$/);
    // Each entry: sealed with that key, naming the key id and its own key.
    expect(decodeProtectedHeader(text)).toEqual({
      alg: 'A256KW',
      enc: 'A256GCM',
      kid: keyHeader.kid,
      jitctl_key: KEY,
    });
  });

  it('derives the key once per unlock, not once per entry', async () => {
    const dir = freshDir();
    const s = store(dir);
    for (let i = 0; i < 5; i++) await s.set(`k${i}`, `v${i}`);
    const derive = vi.spyOn(globalThis.crypto.subtle, 'deriveBits');
    try {
      const again = store(dir);
      for (let i = 0; i < 5; i++) expect(await again.get(`k${i}`)).toBe(`v${i}`);
      expect(derive.mock.calls.length).toBe(1);
    } finally {
      derive.mockRestore();
    }
  });

  it('with a cache holding the key: no passphrase and no derivation at all', async () => {
    const dir = freshDir();
    const held = new Map<string, Uint8Array>();
    const cache = {
      get: async (kid: string) => held.get(kid),
      put: async (kid: string, key: Uint8Array) => void held.set(kid, key),
    };
    const first = fileStore({ dir, p2c: 1000, cache, passphrase: async () => new Secret('pw') });
    await first.set(KEY, VALUE);
    expect(held.size).toBe(1);
    const derive = vi.spyOn(globalThis.crypto.subtle, 'deriveBits');
    try {
      const warm = fileStore({
        dir,
        cache,
        passphrase: async () => {
          throw new Error('must not be asked');
        },
      });
      expect(await warm.get(KEY)).toBe(VALUE);
      await warm.set(KEY, 'changed');
      expect(await warm.get(KEY)).toBe('changed');
      expect(derive).not.toHaveBeenCalled();
    } finally {
      derive.mockRestore();
    }
    // A cache answering with some other key is not believed: the passphrase is asked instead.
    const [kid] = [...held.keys()];
    held.set(kid!, new Uint8Array(32));
    const asked = store(dir, 'pw');
    const lying = fileStore({
      dir,
      cache,
      passphrase: async () => {
        asked.asked.count++;
        return new Secret('pw');
      },
    });
    expect(await lying.get(KEY)).toBe('changed');
    expect(asked.asked.count).toBe(1);
  });

  it('persists across store instances (as across processes) and needs the passphrase once per instance', async () => {
    const dir = freshDir();
    const a = store(dir);
    await a.set(KEY, VALUE);
    await a.set('other', 'x');
    expect(a.asked).toEqual({ count: 1, creating: [true] });
    const b = store(dir);
    expect(await b.get(KEY)).toBe(VALUE);
    expect(await b.get('other')).toBe('x');
    expect(b.asked).toEqual({ count: 1, creating: [false] });
  });

  it('lists and deletes without the passphrase', async () => {
    const dir = freshDir();
    await store(dir).set(KEY, VALUE);
    const locked = fileStore({
      dir,
      passphrase: async () => {
        throw new Error('must not be asked');
      },
    });
    expect(await locked.list()).toEqual([KEY]);
    await locked.delete(KEY);
    expect(await locked.list()).toEqual([]);
  });

  it('creates nothing until something is written', async () => {
    const dir = freshDir();
    const s = store(dir);
    expect(await s.get(KEY)).toBeUndefined();
    expect(await s.list()).toEqual([]);
    await s.delete(KEY);
    expect(existsSync(dir)).toBe(false);
    expect(s.asked.count).toBe(0);
  });

  it('leaves no temporary files behind and ignores a leftover one from a crash', async () => {
    const dir = freshDir();
    const s = store(dir);
    await Promise.all(Array.from({ length: 10 }, (_, i) => s.set(KEY, `v${i}`)));
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    writeFileSync(join(dir, `.${fileNameOf('ghost')}.deadbeef.tmp`), 'partial', { mode: 0o600 });
    expect(await s.list()).toEqual([KEY]);
    expect(await s.get(KEY)).toMatch(/^v\d$/);
  });

  it('refuses a key too long for a file name with a clear error', async () => {
    const err = await rejection(store(freshDir()).set(`https://x|${'r'.repeat(200)}`, 'v'));
    expect(err.message).toMatch(/key too long for the file store \(\d+ bytes; at most 150\)/);
  });
});

describe('file store: wrong passphrase, damaged and foreign entries', () => {
  it('says the passphrase is wrong (exit 4) when reading or writing, and never overwrites', async () => {
    const dir = freshDir();
    await store(dir, 'right').set(KEY, VALUE);
    const before = readFileSync(join(dir, fileNameOf(KEY)!), 'utf8');
    const wrong = store(dir, 'wrong');
    const onGet = await rejection(wrong.get(KEY));
    expect(onGet).toBeInstanceOf(AuthError);
    expect(onGet.exitCode).toBe(ExitCode.Auth);
    expect(onGet.message).toBe(`wrong passphrase for the encrypted credential store in ${dir}`);
    expect(onGet.hint).toContain('JITCTL_FILE_PASSPHRASE');
    const onSet = await rejection(store(dir, 'wrong').set(KEY, 'replaced'));
    expect(onSet.exitCode).toBe(ExitCode.Auth);
    const onNew = await rejection(store(dir, 'wrong').set('another', 'v'));
    expect(onNew.exitCode).toBe(ExitCode.Auth);
    expect(readFileSync(join(dir, fileNameOf(KEY)!), 'utf8')).toBe(before);
    expect(existsSync(join(dir, fileNameOf('another')!))).toBe(false);
    expect(await store(dir, 'right').get(KEY)).toBe(VALUE);
  });

  it('prepareWrite: never prompts or creates the store; once unlocked, the write derives nothing', async () => {
    const fresh = store(freshDir());
    await fresh.prepareWrite?.();
    expect(fresh.asked.count).toBe(0);
    expect(await fresh.list()).toEqual([]);

    const dir = freshDir();
    await store(dir).set(KEY, VALUE);
    const s = store(dir);
    await s.prepareWrite?.();
    expect(s.asked.count).toBe(0);
    expect(await s.get(KEY)).toBe(VALUE);
    await s.prepareWrite?.();
    const derive = vi.spyOn(globalThis.crypto.subtle, 'deriveBits');
    try {
      await s.set(KEY, 'after');
      expect(derive).not.toHaveBeenCalled();
    } finally {
      derive.mockRestore();
    }
    expect(await store(dir).get(KEY)).toBe('after');
    expect(s.asked.count).toBe(1);
  });

  it('treats a tampered entry as absent, and keeps the others', async () => {
    const dir = freshDir();
    const s = store(dir);
    await s.set(KEY, VALUE);
    await s.set('intact', 'still here');
    const file = join(dir, fileNameOf(KEY)!);
    const parts = readFileSync(file, 'utf8').split('.');
    // Flip one character of the ciphertext (part 3); GCM's tag no longer matches.
    const ct = parts[3]!;
    parts[3] = (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1);
    writeFileSync(file, parts.join('.'), { mode: 0o600 });
    const fresh = store(dir);
    expect(await fresh.get(KEY)).toBeUndefined();
    expect(await fresh.get('intact')).toBe('still here');
    writeFileSync(file, 'not a JWE at all', { mode: 0o600 });
    expect(await store(dir).get(KEY)).toBeUndefined();
    writeFileSync(file, '', { mode: 0o600 });
    expect(await store(dir).get(KEY)).toBeUndefined();
  });

  it('treats an entry of another store (other passphrase) or of another key as absent', async () => {
    const mine = freshDir();
    const theirs = freshDir();
    await store(mine).set('mine', 'my value');
    await store(theirs, 'their passphrase').set(KEY, 'their value');
    copyFileSync(join(theirs, fileNameOf(KEY)!), join(mine, fileNameOf(KEY)!));
    expect(await store(mine).get(KEY)).toBeUndefined();
    // An entry of this very store, renamed onto another key, names its real key in its header.
    renameSync(join(mine, fileNameOf('mine')!), join(mine, fileNameOf('moved')!));
    expect(await store(mine).get('moved')).toBeUndefined();
  });

  it('never follows a symlink planted as an entry', async () => {
    const dir = freshDir();
    const s = store(dir);
    await s.set('real', 'real value');
    symlinkSync(join(dir, fileNameOf('real')!), join(dir, fileNameOf('link')!));
    expect(await store(dir).get('link')).toBeUndefined();
  });

  it('refuses a PBES2 count planted far above the maximum (no minutes-long spin)', async () => {
    const dir = freshDir();
    const s = store(dir);
    await s.set('a', 'b');
    // A header asking for five million PBKDF2 rounds (about ten seconds): refused before deriving.
    const planted = (extra: Record<string, unknown>) =>
      `${Buffer.from(
        JSON.stringify({
          alg: 'PBES2-HS512+A256KW',
          enc: 'A256GCM',
          p2c: 5_000_000,
          p2s: 'c2FsdHNhbHRzYWx0c2FsdA',
          ...extra,
        }),
      ).toString('base64url')}.${'A'.repeat(54)}.${'A'.repeat(16)}.AAAA.${'A'.repeat(22)}`;
    writeFileSync(join(dir, fileNameOf('p')!), planted({ jitctl_key: 'p' }), { mode: 0o600 });
    const derive = vi.spyOn(globalThis.crypto.subtle, 'deriveBits');
    try {
      expect(await store(dir).get('p')).toBeUndefined();
      const rounds = derive.mock.calls.map((c) => (c[0] as { iterations?: number }).iterations);
      expect(rounds.length).toBeGreaterThan(0); // the key file was opened…
      expect(rounds.every((r) => r !== undefined && r <= 1_000_000)).toBe(true); // …the plant never
      // The same in the key file itself: refused, as a passphrase that does not open it.
      derive.mockClear();
      writeFileSync(
        join(dir, 'store-key'),
        planted({ kid: 'AAAAAAAAAAAAAAAAAAAAAA', cty: 'jitctl-store-key' }),
        { mode: 0o600 },
      );
      const err = await rejection(store(dir).get('a'));
      expect(err.exitCode).toBe(ExitCode.Auth);
      const planted2 = derive.mock.calls.map((c) => (c[0] as { iterations?: number }).iterations);
      expect(planted2.every((r) => r !== undefined && r <= 1_000_000)).toBe(true);
    } finally {
      derive.mockRestore();
    }
  });

  it('says the key file is damaged rather than guessing', async () => {
    const dir = freshDir();
    await store(dir).set('a', 'b');
    writeFileSync(join(dir, 'store-key'), 'garbage', { mode: 0o600 });
    const err = await rejection(store(dir).get('a'));
    expect(err.message).toBe(
      `the key file of the credential store is damaged: ${join(dir, 'store-key')}`,
    );
    expect(err.hint).toContain(`remove ${dir}`);
  });
});

describe('file store: stores written by jitctl 0.1 (a passphrase-wrapped JWE per entry)', () => {
  /** Writes entries and the verifier the way 0.1 did. */
  async function legacyStore(dir: string, passphrase: string, entries: Record<string, string>) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pass = new TextEncoder().encode(passphrase);
    const seal = (value: string, key?: string) =>
      new CompactEncrypt(new TextEncoder().encode(value))
        .setProtectedHeader({
          alg: 'PBES2-HS512+A256KW',
          enc: 'A256GCM',
          ...(key === undefined ? {} : { jitctl_key: key }),
        })
        .setKeyManagementParameters({ p2c: 1000 })
        .encrypt(pass);
    writeFileSync(join(dir, 'passphrase-check'), await seal('jitctl file store v1'), {
      mode: 0o600,
    });
    for (const [k, v] of Object.entries(entries))
      writeFileSync(join(dir, fileNameOf(k)!), await seal(v, k), { mode: 0o600 });
  }

  it('reads old entries with the passphrase; the first write moves them under a store key', async () => {
    const dir = freshDir();
    await legacyStore(dir, 'old pass', { [KEY]: VALUE, other: 'x' });
    const reader = store(dir, 'old pass');
    expect(await reader.get(KEY)).toBe(VALUE);
    expect(existsSync(join(dir, 'store-key'))).toBe(false);

    const wrong = await rejection(store(dir, 'wrong').set('new', 'v'));
    expect(wrong.exitCode).toBe(ExitCode.Auth);
    expect(existsSync(join(dir, 'store-key'))).toBe(false);
    expect((await rejection(store(dir, 'wrong').get(KEY))).exitCode).toBe(ExitCode.Auth);

    const writer = store(dir, 'old pass');
    await writer.set('new', 'v');
    expect(writer.asked.creating).toEqual([false]);
    expect(readdirSync(dir).sort()).toEqual(
      [fileNameOf(KEY)!, fileNameOf('other')!, fileNameOf('new')!, 'store-key'].sort(),
    );
    for (const k of [KEY, 'other', 'new'])
      expect(decodeProtectedHeader(readFileSync(join(dir, fileNameOf(k)!), 'utf8')).alg).toBe(
        'A256KW',
      );
    const after = store(dir, 'old pass');
    expect(await after.get(KEY)).toBe(VALUE);
    expect(await after.get('other')).toBe('x');
    expect(await after.get('new')).toBe('v');
  });

  it('without the verifier, an old entry must open with the passphrase before it becomes the store’s', async () => {
    const dir = freshDir();
    await legacyStore(dir, 'right', { [KEY]: VALUE });
    unlinkSync(join(dir, 'passphrase-check'));
    expect((await rejection(store(dir, 'wrong').set('x', 'y'))).exitCode).toBe(ExitCode.Auth);
    expect(existsSync(join(dir, 'store-key'))).toBe(false);
    await store(dir, 'right').set('x', 'y');
    expect(await store(dir, 'right').get(KEY)).toBe(VALUE);
  });
});

describe('file store: permissions', () => {
  it('refuses a directory that group or others can enter, saying how to fix it', async () => {
    const dir = freshDir();
    await store(dir).set(KEY, VALUE);
    chmodSync(dir, 0o755);
    for (const op of [
      () => store(dir).get(KEY),
      () => store(dir).set(KEY, 'v'),
      () => store(dir).list(),
      () => store(dir).delete(KEY),
    ]) {
      const err = await rejection(op());
      expect(err.message).toBe(
        `refusing to use the credential store ${dir}: group or others can access it (mode 755)`,
      );
      expect(err.hint).toBe(`run \`chmod 700 ${dir}\``);
    }
    chmodSync(dir, 0o700);
    expect(await store(dir).get(KEY)).toBe(VALUE);
  });

  it('refuses an entry file that group or others can read', async () => {
    const dir = freshDir();
    await store(dir).set(KEY, VALUE);
    const file = join(dir, fileNameOf(KEY)!);
    chmodSync(file, 0o640);
    const err = await rejection(store(dir).get(KEY));
    expect(err.message).toBe(`refusing to read ${file}: group or others can access it (mode 640)`);
    expect(err.hint).toBe(`run \`chmod 600 ${file}\``);
    chmodSync(join(dir, 'store-key'), 0o604);
    chmodSync(file, 0o600);
    const onKeyFile = await rejection(store(dir).set('k', 'v'));
    expect(onKeyFile.hint).toBe(`run \`chmod 600 ${join(dir, 'store-key')}\``);
  });

  it('refuses a plain file where the directory should be', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, '..'), { recursive: true });
    writeFileSync(dir, 'oops');
    const err = await rejection(store(dir).set(KEY, VALUE));
    expect(err.message).toBe(`the credential store ${dir} is not a directory`);
  });
});

describe('file store: the passphrase', () => {
  const ctxWith = (env: Env, opts: { tty?: boolean; prompter?: Prompter } = {}) => {
    const io = testIO({ tty: opts.tty ?? false });
    const dataDir = join(root, `ctx-${++n}`);
    return {
      io,
      dataDir,
      ctx: createContext({
        env,
        io,
        paths: { configDir: join(dataDir, 'c'), dataDir, stateDir: join(dataDir, 's') },
        ...(opts.prompter ? { prompter: opts.prompter } : {}),
      }),
    };
  };
  const scripted = (answers: string[]): Prompter & { asked: string[] } => {
    const asked: string[] = [];
    return {
      asked,
      confirm: async () => {
        throw new Error('unexpected confirm');
      },
      input: async () => {
        throw new Error('unexpected input');
      },
      password: async (message) => {
        asked.push(message);
        const next = answers.shift();
        if (next === undefined) throw new Error(`unexpected question: ${message}`);
        return next;
      },
    };
  };

  it('comes from JITCTL_FILE_PASSPHRASE through openStore(ctx, "file")', async () => {
    const { ctx, dataDir } = ctxWith({ JITCTL_FILE_PASSPHRASE: 'from env' });
    const s = await openStore(ctx, 'file');
    expect(s.kind).toBe('file');
    expect(s.description).toBe(`encrypted files in ${join(dataDir, 'store')}`);
    await s.set(KEY, VALUE);
    expect(
      await fileStore({
        dir: join(dataDir, 'store'),
        passphrase: async () => new Secret('from env'),
      }).get(KEY),
    ).toBe(VALUE);
  });

  it('without the variable and without a terminal: a clear error naming the variable', async () => {
    const { ctx } = ctxWith({});
    const err = await rejection(openFileStore(ctx).set(KEY, VALUE));
    expect(err.exitCode).toBe(ExitCode.Auth);
    expect(err.message).toBe(
      'the encrypted file store needs its passphrase, and there is no terminal to ask for it',
    );
    expect(err.hint).toContain('set JITCTL_FILE_PASSPHRASE');
  });

  it('refuses an empty JITCTL_FILE_PASSPHRASE', async () => {
    const err = await rejection(filePassphrase(ctxWith({ JITCTL_FILE_PASSPHRASE: '' }).ctx, true));
    expect(err.message).toBe('JITCTL_FILE_PASSPHRASE is set but empty');
  });

  it('on a terminal: asks twice for a new store, once for an existing one', async () => {
    const first = scripted(['typed pass', 'typed pass']);
    const a = ctxWith({}, { tty: true, prompter: first });
    await openFileStore(a.ctx).set(KEY, VALUE);
    expect(first.asked).toEqual(['New passphrase for the file store:', 'Repeat the passphrase:']);
    expect(a.io.stderrText()).toContain('Creating the encrypted credential store');

    const second = scripted(['typed pass']);
    const b = createContext({
      env: {},
      io: testIO({ tty: true }),
      paths: { configDir: a.dataDir, dataDir: a.dataDir, stateDir: a.dataDir },
      prompter: second,
    });
    expect(await openFileStore(b).get(KEY)).toBe(VALUE);
    expect(second.asked).toEqual(['Passphrase for the file store:']);
  });

  it('on a terminal: refuses differing or empty answers and stores nothing', async () => {
    const differ = ctxWith({}, { tty: true, prompter: scripted(['one', 'two']) });
    const err = await rejection(openFileStore(differ.ctx).set(KEY, VALUE));
    expect(err.message).toBe('the two passphrases differ; nothing was stored');
    expect(readdirSync(join(differ.dataDir, 'store'))).toEqual([]);
    const empty = ctxWith({}, { tty: true, prompter: scripted(['']) });
    const e2 = await rejection(openFileStore(empty.ctx).set(KEY, VALUE));
    expect(e2.message).toBe('an empty passphrase is not allowed');
  });
});
