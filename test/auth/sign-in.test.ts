import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeGroups, describeIdentity } from '../../src/auth/describe.js';
import { checkVerificationUris } from '../../src/auth/device-flow.js';
import { LockTimeoutError, withFileLock } from '../../src/auth/file-lock.js';
import { authorizationParams, chooseFlow } from '../../src/auth/sign-in.js';
import { type Context, createContext } from '../../src/cli/context.js';
import { AuthError, UsageError } from '../../src/cli/errors.js';
import { testIO } from '../../src/cli/io.js';

/** The small decisions of signing in, each on its own. */

const idp = {
  issuer: 'https://idp.example.com',
  clientId: 'jitctl',
  scopes: ['openid', 'groups'],
  deviceFlow: true,
};

function ctx(env: Record<string, string>): Context {
  return createContext({ io: testIO(), env: { HOME: '/nonexistent', ...env } });
}

describe('chooseFlow', () => {
  it('picks the device flow in CI, over SSH and without a display; the browser otherwise', () => {
    expect(chooseFlow(ctx({ CI: 'true', DISPLAY: ':0' }), 'auto', true)).toBe('device');
    expect(chooseFlow(ctx({ SSH_CONNECTION: '1 2 3 4', DISPLAY: ':0' }), 'auto', true)).toBe(
      'device',
    );
    expect(chooseFlow(ctx({ SSH_TTY: '/dev/pts/1', BROWSER: 'firefox' }), 'auto', true)).toBe(
      'device',
    );
    if (process.platform === 'linux') expect(chooseFlow(ctx({}), 'auto', true)).toBe('device');
    expect(chooseFlow(ctx({ DISPLAY: ':0' }), 'auto', true)).toBe('browser');
    expect(chooseFlow(ctx({ BROWSER: 'firefox' }), 'auto', true)).toBe('browser');
    expect(chooseFlow(ctx({ BROWSER: 'none' }), 'auto', true)).toBe('device');
  });

  it('obeys --device and --browser, and falls back when the provider has no device flow', () => {
    expect(chooseFlow(ctx({ DISPLAY: ':0' }), 'device', true)).toBe('device');
    expect(chooseFlow(ctx({ CI: 'true' }), 'browser', true)).toBe('browser');
    expect(chooseFlow(ctx({ CI: 'true' }), 'auto', false)).toBe('browser');
    expect(() => chooseFlow(ctx({}), 'device', false)).toThrow(UsageError);
  });
});

describe('authorizationParams', () => {
  it('plain sign-in: the broker’s scopes only', () => {
    expect(authorizationParams(idp, {})).toEqual({ scope: 'openid groups' });
  });

  it('step-up: an essential acr through the claims parameter and max_age ≥ 1, never acr_values', () => {
    const p = authorizationParams(idp, {
      stepUp: { acrValues: ['mfa'], maxAge: 0 },
      loginHint: 'lee@example.com',
    });
    expect(p).toEqual({
      scope: 'openid groups',
      claims: '{"id_token":{"acr":{"essential":true,"values":["mfa"]}}}',
      max_age: '1',
      login_hint: 'lee@example.com',
    });
    expect('acr_values' in p).toBe(false);
    expect(authorizationParams(idp, { stepUp: { acrValues: [], maxAge: 300 } })).toEqual({
      scope: 'openid groups',
      max_age: '300',
    });
  });
});

describe('checkVerificationUris (RFC 8628 §5.4)', () => {
  it('accepts the issuer’s own pages', () => {
    expect(() =>
      checkVerificationUris('https://idp.example.com/idp', {
        verification_uri: 'https://idp.example.com/idp/device',
        verification_uri_complete: 'https://idp.example.com/idp/device?user_code=ABCD',
      }),
    ).not.toThrow();
  });

  it('refuses another origin, another scheme or port, and junk', () => {
    for (const uri of [
      'https://evil.example.com/device',
      'https://idp.example.com.evil.example.com/device',
      'http://idp.example.com/device',
      'https://idp.example.com:8443/device',
      'javascript:alert(1)',
      'not a url',
    ]) {
      expect(() =>
        checkVerificationUris('https://idp.example.com/idp', { verification_uri: uri }),
      ).toThrow(AuthError);
    }
    expect(() =>
      checkVerificationUris('https://idp.example.com/idp', {
        verification_uri: 'https://idp.example.com/device',
        verification_uri_complete: 'https://evil.example.com/device?user_code=ABCD',
      }),
    ).toThrow(/refusing to show or open it/);
  });
});

describe('describeIdentity', () => {
  it('name and email, made safe', () => {
    const id = { iss: 'i', sub: 's', name: 'alice', email: 'alice@example.com', groups: [] };
    expect(describeIdentity(id)).toBe('alice (alice@example.com)');
    expect(describeIdentity({ ...id, name: null, email: null })).toBe('s');
    expect(describeIdentity({ ...id, name: 'a\u001b[2Jb' })).toBe('a\\x1b[2Jb (alice@example.com)');
    expect(describeGroups([])).toBe('none');
    expect(describeGroups(['a', 'b'])).toBe('a, b');
  });
});

describe('withFileLock', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function lockCtx() {
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-lock-'));
    dirs.push(dir);
    const c = ctx({ XDG_STATE_HOME: dir });
    return { c, stateDir: c.paths.stateDir };
  }

  it('runs one holder at a time and removes its file', async () => {
    const { c, stateDir } = lockCtx();
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 5 }, () =>
        withFileLock(c, 'refresh-x', async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 20));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it('releases on failure', async () => {
    const { c, stateDir } = lockCtx();
    await expect(
      withFileLock(c, 'refresh-x', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it('breaks a lock left behind by a process that died', async () => {
    const { c, stateDir } = lockCtx();
    await withFileLock(c, 'warm-up', async () => {});
    const file = join(stateDir, 'refresh-x.lock');
    writeFileSync(file, 'someone else\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    expect(await withFileLock(c, 'refresh-x', async () => 'ran')).toBe('ran');
  });

  it('gives up with a clear error when a live holder never lets go', async () => {
    const { c, stateDir } = lockCtx();
    await withFileLock(c, 'warm-up', async () => {});
    writeFileSync(join(stateDir, 'refresh-x.lock'), 'someone else\n');
    const err = await withFileLock(c, 'refresh-x', async () => 'ran', { waitMs: 300 }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err.message).toContain('refresh-x.lock');
    expect(err.hint).toContain('delete that file');
  });
});
