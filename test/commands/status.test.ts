import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import {
  credentialKey,
  decodeSession,
  encodeCredential,
  encodeSession,
  sessionKey,
} from '../../src/credentials/records.js';
import { DEV_USERS } from '../../src/server/dev/index.js';
import { type StandInBroker, startStandInBroker } from '../auth/stand-in-broker.js';
import { BIN, runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';

/**
 * `jitctl status [--json]` reads the store and nothing else: it answers with the broker and its
 * identity provider stopped, shows secrets only masked, and exits 4 when not signed in.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
let broker: StandInBroker;
let h: TestHome;
let server: string;
const CREDENTIAL = 'credential-token-value-for-prod-deploy-9f3c';

async function store(home = h) {
  return openStore(createContext({ io: testIO(), env: { ...home.env } }), 'file');
}

beforeAll(async () => {
  broker = await startStandInBroker({ devicePollInterval: 1 });
  server = broker.url;
  h = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  const cli = spawnCli(['login', '--server', server], { env: h.env });
  await cli.waitForOutput(/user_code=/);
  await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: true });
  expect((await cli.done).code).toBe(0);
  const s = await store();
  await s.set(
    credentialKey(server, 'prod-deploy'),
    encodeCredential({
      role: 'prod-deploy',
      requestId: 'req_7Hq2',
      token: new Secret(CREDENTIAL),
      expiresAt: new Date(Date.now() + 14 * 60_000 + 30_000).toISOString(),
      env: { KUBE_TOKEN: new Secret(CREDENTIAL) },
    }),
  );
  await s.set(
    credentialKey(server, 'db-read'),
    encodeCredential({
      role: 'db-read',
      requestId: 'req_old',
      token: new Secret('an-expired-credential-token-value-0000'),
      expiresAt: new Date(Date.now() - 60_000).toISOString(),
      env: {},
    }),
  );
  // A record filed under another role's key is foreign: status shows it nowhere (as exec ignores it).
  await s.set(
    credentialKey(server, 'staging-admin'),
    encodeCredential({
      role: 'prod-deploy',
      requestId: 'req_foreign',
      token: new Secret('a-foreign-credential-token-value-1111'),
      expiresAt: new Date(Date.now() + 60 * 60_000).toISOString(),
      env: {},
    }),
  );
  // Everything below runs offline: no broker, no identity provider.
  await broker.stop();
});
afterAll(() => h?.cleanup());

describe('jitctl status', () => {
  it('shows identity, session and credentials offline, secrets masked', async () => {
    const r = await runCli(['status', '--offline'], { env: h.env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain(`Server:      ${server}`);
    expect(out).toContain('Signed in:   alice (alice@example.com)');
    expect(out).toContain('Groups:      developers');
    expect(out).toMatch(/Sign-in: {5}mfa, \d+s ago/);
    expect(out).toMatch(/Token: {7}••••••••\S{4}, expires in \d+m \(renewed automatically\)/);
    expect(out).toContain('Store:       encrypted files in');
    expect(out).toMatch(/ROLE\s+REQUEST\s+GRANT\s+TOKEN/);
    expect(out).toMatch(/prod-deploy\s+req_7Hq2\s+1[45]m\s+••••••••9f3c/);
    expect(out).toMatch(/db-read\s+req_old\s+expired/);
    expect(out).not.toContain('unconfirmed');
    expect(out).not.toContain('req_foreign');
    expect(out).not.toContain('staging-admin');

    const session = decodeSession(await (await store()).get(sessionKey(server)))!;
    for (const secret of [session.bearer.reveal(), session.refreshToken!.reveal(), CREDENTIAL]) {
      expect(out).not.toContain(secret);
    }
  });

  it('without --offline and with the broker down: the same, each grant marked unconfirmed', async () => {
    const r = await runCli(['status'], { env: h.env });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/prod-deploy\s+req_7Hq2\s+1[45]m \(unconfirmed\)\s+••••••••9f3c/);
    expect(r.stdout).toMatch(
      /the broker did not answer \(ECONNREFUSED\); grants shown as the store last knew them/,
    );
  });

  it('--json: the documented fields, nothing secret', async () => {
    const r = await runCli(['status', '--json'], { env: h.env });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(Object.keys(doc)).toEqual([
      'server',
      'signed_in',
      'store',
      'session',
      'credentials',
      'scheduled',
      'queued_reports',
    ]);
    expect(Object.keys(doc.session)).toEqual([
      'kind',
      'issuer',
      'client_id',
      'identity',
      'acr',
      'auth_time',
      'expires_at',
      'expired',
      'refreshable',
      'token',
    ]);
    expect(doc.session.identity).toEqual({
      iss: `${server}/idp`,
      sub: 'alice',
      name: 'alice',
      email: 'alice@example.com',
      groups: ['developers'],
    });
    expect(doc.session.acr).toBe('mfa');
    expect(doc.session.auth_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(doc.session.token).toMatch(/^••••••••.{4}$/);
    expect(doc.credentials).toEqual([
      expect.objectContaining({
        role: 'db-read',
        request_id: 'req_old',
        expired: true,
        expires_in_seconds: 0,
        grant: 'ended',
        revoked: null,
        removed: false,
      }),
      expect.objectContaining({
        role: 'prod-deploy',
        request_id: 'req_7Hq2',
        expired: false,
        token: '••••••••9f3c',
        grant: 'unconfirmed',
        grant_expires_at: expect.any(String),
      }),
    ]);
    expect(doc.queued_reports).toBe(0);
    expect(doc.credentials[1].expires_in_seconds).toBeGreaterThan(13 * 60);
    expect(r.stdout).not.toContain(CREDENTIAL);
  });

  it('not signed in to a broker: says so, exit 4 (and --json says signed_in false)', async () => {
    const other = 'http://127.0.0.1:9';
    const text = await runCli(['status', '--server', other], { env: h.env });
    expect(text.code).toBe(4);
    expect(text.stdout).toBe('');
    expect(text.stderr).toContain(`error: not signed in to ${other}`);
    expect(text.stderr).toContain(`hint: run \`jitctl login --server ${other}\``);
    const json = await runCli(['status', '--server', other, '--json'], { env: h.env });
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({
      server: other,
      signed_in: false,
      session: null,
      credentials: [],
    });
  });

  it('no broker configured at all: exit 4', async () => {
    const empty = testHome();
    try {
      const r = await runCli(['status', '--json'], { env: empty.env });
      expect(r.code).toBe(4);
      expect(JSON.parse(r.stdout)).toEqual({
        server: null,
        signed_in: false,
        store: null,
        session: null,
        credentials: [],
        scheduled: [],
        queued_reports: 0,
      });
      expect(r.stderr).toContain('no broker configured');
    } finally {
      empty.cleanup();
    }
  });

  it('shows other people’s text with control characters made visible', async () => {
    const other = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'another passphrase' });
    try {
      const s = await store(other);
      const session = decodeSession(await (await store()).get(sessionKey(server)))!;
      const target = 'http://127.0.0.1:4';
      await s.set(
        sessionKey(target),
        encodeSession({
          ...session,
          identity: {
            ...session.identity,
            name: 'mallory\u001b]0;pwned\u0007',
            email: null,
            groups: ['ops\u202eevil'],
          },
        }),
      );
      const r = await runCli(['status', '--server', target], { env: other.env });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Signed in:   mallory\\x1b]0;pwned\\x07');
      expect(r.stdout).toContain('Groups:      ops\\u202eevil');
      expect(r.stdout).not.toContain('\u001b');
    } finally {
      other.cleanup();
    }
  });

  it('an unreadable session entry counts as not signed in', async () => {
    const other = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'another passphrase' });
    try {
      const target = 'http://127.0.0.1:5';
      await (await store(other)).set(sessionKey(target), '{"v": 99, "bearer": "x"}');
      const r = await runCli(['status', '--server', target], { env: other.env });
      expect(r.code).toBe(4);
    } finally {
      other.cleanup();
    }
  });

  it('loads no OIDC library: its bundle chunk and everything it imports statically', () => {
    const dist = join(dirname(BIN), '..', 'dist');
    const chunk = readdirSync(dist).find((f) => /^status-[\w-]+\.js$/.test(f));
    expect(chunk).toBeDefined();
    const seen = new Set<string>();
    const todo = [chunk!];
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const code = readFileSync(join(dist, file), 'utf8');
      for (const m of code.matchAll(
        /^import\s[^;]*?from\s*["']\.\/([^"']+)["']|^import\s*["']\.\/([^"']+)["']/gm,
      )) {
        todo.push((m[1] ?? m[2])!);
      }
    }
    expect(seen.size).toBeGreaterThan(1);
    for (const file of seen) {
      const code = readFileSync(join(dist, file), 'utf8');
      // openid-client and oauth4webapi, by functions only they define.
      expect(code, file).not.toMatch(
        /enableNonRepudiationChecks|processDeviceAuthorizationResponse/,
      );
    }
  });
});
