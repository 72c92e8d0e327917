import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import {
  decodeSession,
  encodeSession,
  type SessionRecord,
  sessionKey,
} from '../../src/credentials/records.js';
import { DEV_USERS } from '../../src/server/dev/index.js';
import { spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';
import { type StandInBroker, startStandInBroker } from './stand-in-broker.js';

/**
 * Refreshing a session from several processes at once. The provider rotates refresh tokens (a
 * public client's are single-use), so without the lock the second refresh would fail, or worse,
 * revoke the whole grant as a replay. With it: exactly one refresh, every process ends with the
 * same new token.
 */

const FIXTURE = join(import.meta.dirname, 'fixtures', 'bearer-process.ts');
const alice = DEV_USERS.find((u) => u.username === 'alice')!;
let broker: StandInBroker;
let home: TestHome;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const refreshes = () =>
  broker.events.filter((e) => e.type === 'token' && e.grantType === 'refresh_token').length;

function storeCtx() {
  return createContext({ io: testIO(), env: { ...home.env } });
}
async function readSession(): Promise<SessionRecord> {
  const ctx = storeCtx();
  const store = await openStore(ctx, 'file');
  return decodeSession(await store.get(sessionKey(broker.url)))!;
}
async function writeSession(s: SessionRecord): Promise<void> {
  const ctx = storeCtx();
  const store = await openStore(ctx, 'file');
  await store.set(sessionKey(broker.url), encodeSession(s));
}

function bearerProcess(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, broker.url], {
      env: { ...home.env, NODE_NO_WARNINGS: '1' },
      cwd: join(import.meta.dirname, '..', '..'),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  broker = await startStandInBroker({ devicePollInterval: 1 });
  home = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  const cli = spawnCli(['login', '--server', broker.url], { env: home.env });
  await cli.waitForOutput(/user_code=/);
  await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: false });
  expect((await cli.done).code).toBe(0);
});
afterAll(async () => {
  await broker?.stop();
  home?.cleanup();
});

describe('refresh under a lock', () => {
  it('a fresh token is used as is: no refresh', async () => {
    const before = refreshes();
    const r = await bearerProcess();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(sha((await readSession()).bearer.reveal()));
    expect(refreshes()).toBe(before);
  });

  it('six processes with a token about to expire: exactly one refresh, one new token for all', async () => {
    const old = await readSession();
    // The same session, but its token expires within the refresh window (60 s).
    await writeSession({ ...old, expiresAt: Date.now() + 20_000 });
    const before = refreshes();

    const results = await Promise.all(Array.from({ length: 6 }, () => bearerProcess()));
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const hashes = new Set(results.map((r) => r.stdout.trim()));
    expect(hashes.size).toBe(1);
    const now = await readSession();
    expect([...hashes][0]).toBe(sha(now.bearer.reveal()));
    expect(now.bearer.reveal()).not.toBe(old.bearer.reveal());
    expect(now.refreshToken!.reveal()).not.toBe(old.refreshToken!.reveal());
    expect(now.expiresAt).toBeGreaterThan(Date.now() + 60_000);
    expect(now.identity).toEqual(old.identity);
    expect(refreshes() - before).toBe(1);
    // The lock is gone once the work is done.
    const state = join(home.env.XDG_STATE_HOME!, 'jitctl');
    expect(existsSync(state) ? readdirSync(state).filter((f) => f.endsWith('.lock')) : []).toEqual(
      [],
    );
  });

  it('keeps using a still-valid token when the identity provider is unreachable', async () => {
    const current = await readSession();
    // The provider is away: the session's issuer is a closed port.
    await writeSession({
      ...current,
      issuer: 'http://127.0.0.1:9/idp',
      expiresAt: Date.now() + 30_000,
    });
    const r = await bearerProcess();
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(sha(current.bearer.reveal()));
    await writeSession(current);
  });

  it('refreshes after the provider restarted: its keys and refresh tokens persist', async () => {
    const current = await readSession();
    await writeSession({ ...current, expiresAt: Date.now() + 10_000 });
    await broker.restart();
    const before = refreshes();
    const r = await bearerProcess();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(refreshes() - before).toBe(1);
    expect(r.stdout.trim()).not.toBe(sha(current.bearer.reveal()));
  });

  it('a refresh the provider refuses ends in "session expired, run jitctl login" (exit 4)', async () => {
    const current = await readSession();
    await writeSession({
      ...current,
      refreshToken: new Secret('not-a-refresh-token-the-provider-knows'),
      expiresAt: Date.now() - 1_000,
    });
    const r = await bearerProcess();
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`error: your session with ${broker.url} expired`);
    expect(r.stderr).toContain(`hint: run \`jitctl login --server ${broker.url}\``);
    expect(r.stderr).not.toContain('not-a-refresh-token');
    await writeSession(current);
  });

  it('an expired session without a refresh token asks to log in (exit 4)', async () => {
    const current = await readSession();
    await writeSession({ ...current, refreshToken: null, expiresAt: Date.now() - 1_000 });
    const r = await bearerProcess();
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('expired');
    await writeSession(current);
  });
});
