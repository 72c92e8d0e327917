import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CredentialResponse } from '../../src/api/schemas.js';
import { createContext } from '../../src/cli/context.js';
import { type TestIO, testIO } from '../../src/cli/io.js';
import { run as list } from '../../src/commands/server-keys/list.js';
import { run as retire } from '../../src/commands/server-keys/retire.js';
import { run as rotate } from '../../src/commands/server-keys/rotate.js';
import type { LiveKeyRing } from '../../src/server/mint/keys.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import {
  type Dialect,
  http,
  rawSql,
  startTestBroker,
  type TestBroker,
  type TestClock,
  testClock,
} from '../support/broker.js';
import { runCli, testHome } from '../support/cli.js';

/**
 * `jitctl server keys list|rotate|retire` against running brokers: a rotation reaches every
 * replica without a restart, credentials minted before it keep verifying against the JWKS, new
 * ones carry the new kid, retiring refuses until everything the old key signed has expired, and
 * no configuration change brings a replaced key back.
 */

const MIN = 60_000;
/** Longest the self-service credentials of these tests last (its default duration). */
const WINDOW = 10 * MIN;
/** Replicas behind one load balancer share the issuer URL of their credentials. */
const PUBLIC_URL = 'https://jit.example.com';
const dir = mkdtempSync(join(tmpdir(), 'jitctl-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Jwks {
  keys: (JWK & { kid: string })[];
}

/** Runs one of the commands in-process as an operator would, with the brokers' clock. */
async function keys<O>(
  cmd: (o: O, ctx: ReturnType<typeof createContext>) => Promise<number | undefined>,
  options: O,
  clock: TestClock,
  env: Record<string, string> = {},
): Promise<{ code: number | undefined; out: string; err: string; io: TestIO }> {
  const io = testIO();
  const ctx = createContext({
    io,
    env,
    clock: { now: clock.now, sleep: async () => {} },
  });
  const code = await cmd(options, ctx);
  return { code, out: io.stdoutText(), err: io.stderrText(), io };
}

const jwks = async (b: TestBroker) =>
  (await http<Jwks>(b.url, 'GET', '/.well-known/jwks.json')).body;

/** A credential for alice (self-service is approved at once). */
async function mint(b: TestBroker): Promise<string> {
  const alice = actor(b, people.alice);
  const req = await file(alice, { role: 'self-service', reason: 'keys' });
  const r = await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
  expect(r.status, r.text).toBe(200);
  return r.body.token;
}

/** What a relying party does: the broker's JWKS of the moment, at the brokers' time. */
async function verifies(b: TestBroker, token: string): Promise<boolean> {
  const set = createLocalJWKSet(await jwks(b));
  try {
    await jwtVerify(token, set, {
      issuer: b.broker.publicUrl,
      audience: 'https://ro.example.com',
      currentDate: new Date(b.clock.now()),
    });
    return true;
  } catch {
    return false;
  }
}

/** Resolves when the broker has picked up a change of its keys (it re-reads them on its own). */
function nextKeyChange(): { promise: Promise<LiveKeyRing>; hook: (r: LiveKeyRing) => void } {
  let hook!: (r: LiveKeyRing) => void;
  const promise = new Promise<LiveKeyRing>((resolve) => {
    hook = resolve;
  });
  return { promise, hook };
}

describe.each<Dialect>(['sqlite', 'postgres'])('database keys on %s', (dialect) => {
  let a: TestBroker;
  let b: TestBroker | undefined;
  const changes = { a: nextKeyChange(), b: nextKeyChange() };
  beforeAll(async () => {
    const clock = testClock();
    a = await startTestBroker({
      policy: POLICY,
      dialect,
      clock,
      settings: { key_auto_retire: 'false', public_url: PUBLIC_URL },
      start: { keyRefreshMs: 25, onKeysChanged: (r) => changes.a.hook(r) },
    });
    // A second replica on the same database (PostgreSQL is the multi-replica set-up).
    if (dialect === 'postgres')
      b = await startTestBroker({
        policy: POLICY,
        dbUrl: a.dbUrl,
        issuer: a.issuer,
        clock,
        settings: { key_auto_retire: 'false', public_url: PUBLIC_URL },
        start: { keyRefreshMs: 25, onKeysChanged: (r) => changes.b.hook(r) },
      });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('rotates while brokers run, keeps old credentials valid, and retires only when safe', async () => {
    const opts = { db: a.dbUrl };
    const before = await mint(a);
    const oldKid = decodeProtectedHeader(before).kid!;
    const listed = JSON.parse((await keys(list, { ...opts, json: true }, a.clock)).out);
    expect(listed.keys).toEqual([
      expect.objectContaining({ kid: oldKid, alg: 'ES256', state: 'signing', retirable_at: null }),
    ]);

    const rotated = await keys(rotate, { ...opts, reason: 'yearly rotation' }, a.clock);
    expect(rotated.code).toBe(0);
    const newKid = rotated.out.trim();
    expect(newKid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newKid).not.toBe(oldKid);
    expect(rotated.err).toContain(`${oldKid} stays in the JWKS`);

    // Every replica picks the new key up by itself.
    await changes.a.promise;
    if (b) await changes.b.promise;
    for (const broker of [a, ...(b ? [b] : [])]) {
      const set = await jwks(broker);
      expect(set.keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
      expect(set.keys.every((k) => k.d === undefined)).toBe(true);
      expect(await verifies(broker, before)).toBe(true);
      const after = await mint(broker);
      expect(decodeProtectedHeader(after)).toMatchObject({ alg: 'ES256', kid: newKid });
      expect(await verifies(broker, after)).toBe(true);
    }
    // The replaced key lost its private part: nothing can sign with it again.
    const rows = (await rawSql(
      a.dbUrl,
      `select kid, private_jwk from signing_keys where kid = '${oldKid}'`,
    )) as { private_jwk: string }[];
    expect(rows[0]!.private_jwk).toBe('');

    // Too early: the credential minted before the rotation is valid for its whole window.
    const early = await keys(retire, { ...opts, kid: oldKid }, a.clock).catch((e: unknown) => e);
    expect(early).toMatchObject({
      exitCode: 3,
      message: expect.stringMatching(
        /may still verify valid credentials: the last credential it signed expires at .*safe to retire at/,
      ),
      hint: expect.stringContaining('--force'),
    });
    const safe = JSON.parse((await keys(list, { ...opts, json: true }, a.clock)).out).keys.find(
      (k: { kid: string }) => k.kid === oldKid,
    );
    expect(safe.state).toBe('published');
    expect(Date.parse(safe.retirable_at)).toBeGreaterThan(a.clock.now() + WINDOW - MIN);

    a.clock.advance(Date.parse(safe.retirable_at) - a.clock.now() + 1_000);
    expect(await verifies(a, before)).toBe(false); // expired by now anyway
    const retired = await keys(retire, { ...opts, kid: oldKid.slice(0, 8), json: true }, a.clock);
    expect(JSON.parse(retired.out).retired).toMatchObject({ kid: oldKid, state: 'retired' });
    await a.broker.keys.refresh();
    if (b) await b.broker.keys.refresh();
    for (const broker of [a, ...(b ? [b] : [])])
      expect((await jwks(broker)).keys.map((k) => k.kid)).toEqual([newKid]);

    const events = (await rawSql(
      a.dbUrl,
      `select type, actor, data from audit_events where type like 'key.%' order by seq`,
    )) as { type: string; actor: string; data: string }[];
    expect(events.map((e) => e.type)).toEqual(['key.created', 'key.rotated', 'key.retired']);
    expect(JSON.parse(events[1]!.data)).toEqual({
      kid: newKid,
      previous: oldKid,
      alg: 'ES256',
      reason: 'yearly rotation',
    });
    expect(JSON.parse(events[2]!.data)).toMatchObject({ kid: oldKid, forced: false });
    expect(JSON.parse(events[0]!.actor)).toMatchObject({
      iss: 'urn:jitctl:operator',
      name: 'jitctl server keys rotate',
    });
    // Never key material in the audit log or the brokers' logs.
    const all = JSON.stringify(await rawSql(a.dbUrl, 'select data, actor from audit_events'));
    expect(all).not.toMatch(/"d"|private/);
    expect(a.logs()).not.toMatch(/"d":/);
  });
});

describe('refusals', () => {
  let a: TestBroker;
  beforeAll(async () => {
    a = await startTestBroker({ policy: POLICY });
  });
  afterAll(async () => a?.close());

  it('never retires the signing key, an unknown key, or a retired one; names bad input', async () => {
    const opts = { db: a.dbUrl };
    const signing = JSON.parse((await keys(list, { ...opts, json: true }, a.clock)).out).keys[0];
    await expect(keys(retire, { ...opts, kid: signing.kid }, a.clock)).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringContaining('is the signing key'),
    });
    await expect(keys(retire, { ...opts, kid: 'nosuchkey' }, a.clock)).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('no key nosuchkey'),
    });
    await expect(keys(retire, { ...opts, kid: 'a b' }, a.clock)).rejects.toMatchObject({
      exitCode: 2,
    });
    await expect(keys(rotate, { ...opts, alg: 'HS256' }, a.clock)).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('--alg must be one of ES256, EdDSA, RS256'),
    });
    await expect(keys(list, {}, a.clock, { JITCTL_SERVER_RATE_LIMIT: 'x' })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('RATE_LIMIT'),
    });

    // --force retires a key whose credentials may still be valid (a compromised key).
    await mint(a);
    await keys(rotate, opts, a.clock);
    const forced = await keys(retire, { ...opts, kid: signing.kid, force: true }, a.clock);
    expect(forced.err).toContain('forced');
    await expect(keys(retire, { ...opts, kid: signing.kid }, a.clock)).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringContaining('already retired'),
    });
    const event = (await rawSql(
      a.dbUrl,
      `select data from audit_events where type = 'key.retired'`,
    )) as { data: string }[];
    expect(JSON.parse(event[0]!.data)).toMatchObject({ kid: signing.kid, forced: true });
  });
});

describe('automatic retirement', () => {
  it('retires a published key once nothing it signed is valid, audited as the broker', async () => {
    const a = await startTestBroker({ policy: POLICY, start: { keyRefreshMs: 60_000 } });
    try {
      const before = await mint(a);
      const oldKid = decodeProtectedHeader(before).kid!;
      await keys(rotate, { db: a.dbUrl }, a.clock);
      await a.broker.keys.refresh();
      expect((await jwks(a)).keys).toHaveLength(2);
      // Within the window nothing is retired.
      a.clock.advance(WINDOW - MIN);
      await a.broker.keys.refresh();
      expect((await jwks(a)).keys).toHaveLength(2);
      a.clock.advance(2 * MIN + 5 * MIN);
      await a.broker.keys.refresh();
      await a.broker.keys.refresh();
      expect((await jwks(a)).keys.map((k) => k.kid)).not.toContain(oldKid);
      const rows = (await rawSql(
        a.dbUrl,
        `select actor, data from audit_events where type = 'key.retired'`,
      )) as { actor: string | null; data: string }[];
      expect(rows).toHaveLength(1);
      expect(rows[0]!.actor).toBeNull();
      expect(JSON.parse(rows[0]!.data)).toMatchObject({ kid: oldKid, automatic: true });
    } finally {
      await a.close();
    }
  });
});

describe('changing signing_alg', () => {
  it('never brings a replaced key back, and adopts the one-key-per-algorithm layout of older versions', async () => {
    const clock = testClock();
    const first = await startTestBroker({ policy: POLICY, clock });
    const dbUrl = first.dbUrl;
    const es1 = decodeProtectedHeader(await mint(first)).kid!;
    await first.broker.close();

    // The documented switch: EdDSA by a rotation, then back to ES256 in the config.
    const ed = (await keys(rotate, { db: dbUrl, alg: 'eddsa' }, clock)).out.trim();
    const again = await startTestBroker({
      policy: POLICY,
      dbUrl,
      issuer: first.issuer,
      clock,
      settings: { signing_alg: 'ES256' },
    });
    try {
      expect(decodeProtectedHeader(await mint(again))).toMatchObject({ alg: 'EdDSA', kid: ed });
      expect(again.logs()).toContain('the signing key is EdDSA but signing_alg is ES256');
      const es2 = (await keys(rotate, { db: dbUrl }, clock)).out.trim();
      expect(es2).not.toBe(es1);
      await again.broker.keys.refresh();
      expect(decodeProtectedHeader(await mint(again))).toMatchObject({ alg: 'ES256', kid: es2 });
    } finally {
      await again.broker.close();
    }

    // Rows as versions before rotation left them: one slot per algorithm, both with a private key.
    const legacy = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const priv = await exportJWK(legacy.privateKey);
    const { calculateJwkThumbprint } = await import('jose');
    const pub = { kty: priv.kty!, crv: priv.crv!, x: priv.x! };
    const legacyKid = await calculateJwkThumbprint(pub);
    await rawSql(dbUrl, `delete from signing_keys`);
    const { generateKey } = await import('../../src/server/mint/keys.js');
    const es = await generateKey('ES256');
    await rawSql(
      dbUrl,
      `insert into signing_keys (kid, slot, alg, private_jwk, public_jwk, created_at) values
       ('${es.kid}', 'current:ES256', 'ES256', '${JSON.stringify(es.privateJwk)}', '${JSON.stringify(es.publicJwk)}', 1),
       ('${legacyKid}', 'current:EdDSA', 'EdDSA', '${JSON.stringify(priv)}', '${JSON.stringify(pub)}', 2)`,
    );
    const upgraded = await startTestBroker({
      policy: POLICY,
      dbUrl,
      issuer: first.issuer,
      clock,
      settings: { signing_alg: 'EdDSA' },
    });
    try {
      // The key of the configured algorithm signs; the other only verifies, and cannot sign again.
      expect(decodeProtectedHeader(await mint(upgraded))).toMatchObject({ kid: legacyKid });
      expect((await jwks(upgraded)).keys.map((k) => k.kid)).toEqual([legacyKid, es.kid]);
      const rows = (await rawSql(
        dbUrl,
        `select private_jwk, state from signing_keys where kid = '${es.kid}'`,
      )) as { private_jwk: string; state: string }[];
      expect(rows[0]).toEqual({ private_jwk: '', state: 'published' });
    } finally {
      await upgraded.close();
      await first.close();
    }
  });
});

describe('key files', () => {
  it('rotates and retires in the file while the broker runs; the file stays private', async () => {
    const keyFile = join(dir, 'keys', 'signing.json');
    const env = { JITCTL_SERVER_SIGNING_KEY: keyFile };
    const a = await startTestBroker({
      policy: POLICY,
      settings: { signing_key: keyFile, key_auto_retire: 'false' },
      start: { keyRefreshMs: 60_000 },
    });
    try {
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      const before = await mint(a);
      const oldKid = decodeProtectedHeader(before).kid!;
      const r = await keys(rotate, { db: a.dbUrl, alg: 'RS256' }, a.clock, env);
      const newKid = r.out.trim();
      const stored = JSON.parse(readFileSync(keyFile, 'utf8')) as { keys: JWK[] };
      expect(stored.keys.map((k) => [k.kid, k.alg, typeof k.d])).toEqual([
        [newKid, 'RS256', 'string'],
        [oldKid, 'ES256', 'undefined'],
      ]);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      await a.broker.keys.refresh();
      expect(await verifies(a, before)).toBe(true);
      const after = await mint(a);
      expect(decodeProtectedHeader(after)).toMatchObject({ alg: 'RS256', kid: newKid });
      expect(await verifies(a, after)).toBe(true);

      await expect(keys(retire, { db: a.dbUrl, kid: oldKid }, a.clock, env)).rejects.toMatchObject({
        exitCode: 3,
      });
      a.clock.advance(WINDOW + 7 * MIN);
      await keys(retire, { db: a.dbUrl, kid: oldKid }, a.clock, env);
      expect((JSON.parse(readFileSync(keyFile, 'utf8')) as { keys: JWK[] }).keys).toHaveLength(1);
      await a.broker.keys.refresh();
      expect((await jwks(a)).keys.map((k) => k.kid)).toEqual([newKid]);
      const types = (await rawSql(
        a.dbUrl,
        `select type from audit_events where type like 'key.%' order by seq`,
      )) as { type: string }[];
      expect(types.map((t) => t.type)).toEqual(['key.created', 'key.rotated', 'key.retired']);
    } finally {
      await a.close();
    }
  });

  it('takes a single private JWK as earlier versions wrote it, and refuses broken files', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const lone = join(dir, 'lone.jwk');
    writeFileSync(lone, JSON.stringify(await exportJWK(privateKey)), { mode: 0o600 });
    const a = await startTestBroker({ policy: POLICY, settings: { signing_key: lone } });
    try {
      const kid = decodeProtectedHeader(await mint(a)).kid!;
      const listed = await keys(list, { db: a.dbUrl, json: true }, a.clock, {
        JITCTL_SERVER_SIGNING_KEY: lone,
      });
      expect(JSON.parse(listed.out)).toMatchObject({
        store: `key file ${lone}`,
        keys: [{ kid, state: 'signing' }],
      });
    } finally {
      await a.close();
    }
    const broken: [string, string, RegExp][] = [
      ['not json', '{', /is not JSON/],
      [
        'no private key',
        JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] }),
        /no private key|P-256/,
      ],
      [
        'wrong kty',
        JSON.stringify({ kty: 'oct', k: 'AAAA' }),
        /must be a P-256 \(ES256\), Ed25519 \(EdDSA\) or RSA/,
      ],
    ];
    for (const [name, text, message] of broken) {
      const f = join(dir, `${name.replace(/ /g, '-')}.json`);
      writeFileSync(f, text, { mode: 0o600 });
      await expect(
        keys(list, { db: `sqlite:${join(dir, 'broken.db')}` }, testClock(), {
          JITCTL_SERVER_SIGNING_KEY: f,
        }),
        name,
      ).rejects.toMatchObject({ exitCode: 1, message: expect.stringMatching(message) });
    }
  });
});

describe('the binary', () => {
  const home = testHome();
  afterAll(() => home.cleanup());

  it('runs `jitctl server keys` with the broker’s flags before or after `keys`', async () => {
    const db = `sqlite:${join(dir, 'bin.db')}`;
    const empty = await runCli(['server', 'keys', 'list', '--db', db], { env: home.env });
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stderr).toContain('no signing keys');
    const rotated = await runCli(['server', '--db', db, 'keys', 'rotate', '--json'], {
      env: home.env,
    });
    expect(rotated.code, rotated.stderr).toBe(0);
    const kid = JSON.parse(rotated.stdout).created.kid as string;
    const listed = await runCli(['server', 'keys', 'list', '--db', db], { env: home.env });
    expect(listed.stdout).toMatch(
      new RegExp(`^KID\\s+ALG\\s+STATE\\s+CREATED\\s+RETIRE\\n${kid}\\s+ES256\\s+signing`),
    );
    const help = await runCli(['server', 'keys', '--help'], { env: home.env });
    expect(help.stdout).toContain('rotate');
  });
});
