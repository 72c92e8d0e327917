import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactSign, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { canonicalJson, storedEventHash } from '../../src/api/audit-chain.js';
import type { AuditCheckpoint } from '../../src/api/schemas.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { run as retire } from '../../src/commands/server-keys/retire.js';
import { run as rotate } from '../../src/commands/server-keys/rotate.js';
import { openStore } from '../../src/credentials/index.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import {
  type Dialect,
  http,
  rawSql,
  startTestBroker,
  storeSession,
  type TestBroker,
} from '../support/broker.js';
import { runCli, testHome } from '../support/cli.js';

/**
 * `jitctl audit verify --checkpoints`, the real binary, against checkpoints kept where CloudTrail
 * keeps digest files: a sink's files and saved answers. A database rewritten from an earlier
 * point, with a chain that verifies on its own, fails naming the checkpoint it no longer extends;
 * forged checkpoints are refused; a key retired long ago still vouches for what it signed.
 */

vi.setConfig({ testTimeout: 60_000 });

const home = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'checkpoint passphrase' });
const dir = mkdtempSync(join(tmpdir(), 'jitctl-ckpt-'));
afterAll(() => {
  home.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const verify = (...args: string[]) => runCli(['audit', 'verify', ...args], { env: home.env });

async function activity(b: TestBroker, n: number): Promise<void> {
  const alice = actor(b, people.alice);
  for (let i = 0; i < n; i++) await file(alice, { role: 'self-service', reason: `work ${i}` });
}

const checkpoint = async (b: TestBroker) => {
  const r = await actor(b, people.ada).get<AuditCheckpoint>('/v1/audit/checkpoint');
  expect(r.status, r.text).toBe(200);
  return r.body;
};

/** A broker with a file sink that receives every event and checkpoint. */
async function brokerWithArchive(dialect: Dialect, name: string) {
  const archive = join(dir, `${name}-archive`);
  const b = await startTestBroker({
    policy: POLICY,
    dialect,
    settings: {
      audit_sinks: JSON.stringify([{ name: 'archive', file: join(archive, 'audit.jsonl') }]),
    },
    start: {
      audit: { checkpointIntervalMs: null, sinks: { pollIntervalMs: 50 } },
      keyRefreshMs: 25,
    },
  });
  const jwks = join(dir, `${name}-jwks.json`);
  writeFileSync(jwks, (await http(b.url, 'GET', '/.well-known/jwks.json')).text);
  return { b, archive, jwks };
}

/** Waits until the sink has written `checkpoint` to its file. */
const archived = (archive: string, cp: AuditCheckpoint) =>
  vi.waitFor(() => expect(readFileSync(join(archive, 'audit.jsonl'), 'utf8')).toContain(cp.jws), {
    timeout: 15_000,
    interval: 25,
  });

/**
 * What an attacker with write access to the database does: change event `seq` and re-hash every
 * event after it, and the head, so that the log's own chain verifies again.
 */
async function rewriteFrom(dbUrl: string, seq: number): Promise<void> {
  type Row = {
    seq: number;
    at: string;
    type: string;
    request_id: string | null;
    actor: string | null;
    data: string;
    prev_hash: string;
    hash: string;
  };
  const rows = (await rawSql(
    dbUrl,
    `select * from audit_events where seq >= ${seq} order by seq`,
  )) as Row[];
  let prev = rows[0]!.prev_hash;
  const sql: string[] = [];
  for (const r of rows) {
    const data =
      Number(r.seq) === seq
        ? canonicalJson({ ...JSON.parse(r.data), reason: 'nothing to see' })
        : r.data;
    const hash = storedEventHash(prev, { ...r, seq: Number(r.seq), data });
    sql.push(
      `update audit_events set data = '${data.replace(/'/g, "''")}', prev_hash = '${prev}', hash = '${hash}' where seq = ${Number(r.seq)}`,
    );
    prev = hash;
  }
  sql.push(`update audit_head set hash = '${prev}' where id = 1`);
  for (const s of sql) await rawSql(dbUrl, s);
}

describe.each<Dialect>(['sqlite', 'postgres'])(
  'jitctl audit verify --checkpoints on %s',
  (dialect) => {
    let b: TestBroker;
    let archive: string;
    let jwks: string;
    let c: AuditCheckpoint;
    beforeAll(async () => {
      ({ b, archive, jwks } = await brokerWithArchive(dialect, `main-${dialect}`));
      await activity(b, 3);
      await checkpoint(b);
      await activity(b, 3);
      c = await checkpoint(b);
      await activity(b, 2);
      await archived(archive, c);
      await storeSession(
        await openStore(createContext({ env: home.env, io: testIO() }), 'file'),
        b,
        people.ada,
      );
    });
    afterAll(async () => b?.close());

    it('proves the log extends every checkpoint: saved JWKS, the live one, and through the API', async () => {
      const saved = await verify('--db', b.dbUrl, '--checkpoints', archive, '--jwks', jwks);
      expect(saved.stderr).toBe('');
      expect(saved.code).toBe(0);
      expect(saved.stdout).toMatch(/^ok: \d+ events, chain intact, head [0-9a-f]{64}\n/);
      expect(saved.stdout).toContain(
        `ok: 2 checkpoints verified, the latest at event ${c.seq} (signed ${c.signed_at}); the log extends every one\n`,
      );
      expect(saved.stdout).toContain(`keys trusted: the saved JWKS ${jwks}`);
      const live = await verify('--db', b.dbUrl, '--checkpoints', archive, '--server', b.url);
      expect(live.code).toBe(0);
      expect(live.stdout).toContain(
        `keys trusted: the broker's JWKS at ${b.url}/.well-known/jwks.json`,
      );
      const api = await verify('--server', b.url, '--checkpoints', archive, '--json');
      expect(api.code).toBe(0);
      expect(JSON.parse(api.stdout)).toMatchObject({
        ok: true,
        checkpoints: { ok: true, verified: 2, failed: [] },
      });
    });

    it('a database rewritten after a checkpoint fails, naming the checkpoint, though its chain verifies', async () => {
      const own = await brokerWithArchive(dialect, `rewrite-${dialect}`);
      try {
        await activity(own.b, 2);
        const first = await checkpoint(own.b);
        await activity(own.b, 3);
        const second = await checkpoint(own.b);
        await activity(own.b, 1);
        await archived(own.archive, second);
        await rewriteFrom(own.b.dbUrl, first.seq + 2);

        const chainOnly = await verify('--db', own.b.dbUrl);
        expect(chainOnly.code).toBe(0);
        const r = await verify(
          '--db',
          own.b.dbUrl,
          '--checkpoints',
          own.archive,
          '--jwks',
          own.jwks,
        );
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/^ok: \d+ events, chain intact/);
        const line =
          readFileSync(join(own.archive, 'audit.jsonl'), 'utf8')
            .split('\n')
            .findIndex((l) => l.includes(second.jws)) + 1;
        expect(r.stdout).toContain(
          `broken: the log does not extend checkpoint ${own.archive}/audit.jsonl:${line} (event ${second.seq}, signed ${second.signed_at}, key ${second.kid.slice(0, 12)}…): event ${second.seq}'s hash is `,
        );
        expect(r.stdout).toContain(`the checkpoint says ${second.hash}: the log was rewritten`);
        expect(r.stdout).toMatch(
          new RegExp(
            `\\(it was changed after event ${first.seq}, which checkpoint \\S+audit\\.jsonl:\\d+ still matches, and at or before event ${second.seq}\\)`,
          ),
        );

        // Cut off instead: the log ends before the checkpoint.
        await rawSql(own.b.dbUrl, `delete from audit_events where seq > ${first.seq + 1}`);
        const [h] = (await rawSql(
          own.b.dbUrl,
          `select hash from audit_events where seq = ${first.seq + 1}`,
        )) as { hash: string }[];
        await rawSql(
          own.b.dbUrl,
          `update audit_head set seq = ${first.seq + 1}, hash = '${h!.hash}' where id = 1`,
        );
        const cut = await verify(
          '--db',
          own.b.dbUrl,
          '--checkpoints',
          own.archive,
          '--jwks',
          own.jwks,
          '--json',
        );
        expect(cut.code).toBe(1);
        const json = JSON.parse(cut.stdout) as {
          ok: boolean;
          checkpoints: { failed: { status: string; seq: number; reason: string }[] };
        };
        expect(json.ok).toBe(false);
        expect(json.checkpoints.failed).toEqual([
          expect.objectContaining({
            status: 'broken',
            seq: second.seq,
            reason: `the log ends at event ${first.seq + 1}, before the checkpoint's event ${second.seq}: events were cut off`,
          }),
        ]);
      } finally {
        await own.b.close();
      }
    });

    it('refuses forged checkpoints: changed, signed by a key that is not the broker’s, mislabelled', async () => {
      const forged = join(dir, `forged-${dialect}`);
      mkdirSync(forged);
      const [h, p, s] = c.jws.split('.');
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
      const changed = Buffer.from(JSON.stringify({ ...claims, hash: 'a'.repeat(64) })).toString(
        'base64url',
      );
      writeFileSync(join(forged, 'changed.jws'), `${h}.${changed}.${s}\n`);
      // A well-formed checkpoint of the real head, signed by someone else's key.
      const { privateKey, publicKey } = await generateKeyPair('ES256');
      const jwk = await exportJWK(publicKey);
      const kid = await calculateJwkThumbprint(jwk);
      const other = await new CompactSign(new TextEncoder().encode(canonicalJson(claims)))
        .setProtectedHeader({ alg: 'ES256', typ: 'jitctl-audit-checkpoint+jws', kid, jwk })
        .sign(privateKey);
      writeFileSync(join(forged, 'other-key.json'), JSON.stringify({ jws: other }));
      // The broker's own key named, someone else's key embedded.
      const lying = await new CompactSign(new TextEncoder().encode(canonicalJson(claims)))
        .setProtectedHeader({ alg: 'ES256', typ: 'jitctl-audit-checkpoint+jws', kid: c.kid, jwk })
        .sign(privateKey);
      writeFileSync(join(forged, 'lying-kid.jws'), lying);
      const r = await verify('--db', b.dbUrl, '--checkpoints', forged, '--jwks', jwks);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(
        `refused: checkpoint ${forged}/changed.jws:1 has a signature that does not verify (changed or forged)`,
      );
      expect(r.stdout).toContain(
        `refused: checkpoint ${forged}/other-key.json:1 is signed by key ${kid}, which is not one of the broker's keys`,
      );
      expect(r.stdout).toContain(
        `refused: checkpoint ${forged}/lying-kid.jws:1 names a kid that is not its key's thumbprint`,
      );
      expect(r.stdout).not.toMatch(/^ok: \d+ checkpoints/m);
    });

    it('bad input: a clear error and exit 2 (usage) or 1', async () => {
      const j = await verify('--jwks', jwks);
      expect(j.code).toBe(2);
      expect(j.stderr).toContain('--jwks goes with --checkpoints');
      const missing = await verify('--db', b.dbUrl, '--checkpoints', join(dir, 'nowhere'));
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no such file or directory');
      const empty = join(dir, `empty-${dialect}`);
      mkdirSync(empty);
      writeFileSync(join(empty, 'notes.txt'), 'nothing here\n');
      const none = await verify('--db', b.dbUrl, '--checkpoints', empty, '--jwks', jwks);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain(`found no checkpoints in ${empty}`);
      const secret = join(dir, `private-${dialect}.json`);
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      writeFileSync(secret, JSON.stringify({ keys: [await exportJWK(privateKey)] }));
      const priv = await verify('--db', b.dbUrl, '--checkpoints', archive, '--jwks', secret);
      expect(priv.code).toBe(1);
      expect(priv.stderr).toContain('holds a private key');
      const noKeys = await runCli(['audit', 'verify', '--db', b.dbUrl, '--checkpoints', archive], {
        env: testHome().env,
      });
      expect(noKeys.code).toBe(2);
      expect(noKeys.stderr).toContain('--checkpoints needs the keys to trust');
    });
  },
);

describe('checkpoints signed by a key that has since been retired', () => {
  it('verify through the log that records the key, not through the JWKS', async () => {
    const { b } = await brokerWithArchive('sqlite', 'retired');
    try {
      await activity(b, 2);
      const old = await checkpoint(b);
      const io = testIO();
      const ctx = createContext({ io, env: home.env });
      expect(await rotate({ db: b.dbUrl, reason: 'yearly' }, ctx)).toBe(0);
      await vi.waitFor(() => expect(b.broker.keys.ring.current.kid).not.toBe(old.kid), {
        timeout: 10_000,
      });
      await activity(b, 2);
      const fresh = await checkpoint(b);
      expect(fresh.kid).not.toBe(old.kid);
      expect(await retire({ db: b.dbUrl, kid: old.kid, force: true }, ctx)).toBe(0);
      await vi.waitFor(
        async () => {
          const keys = (
            await http<{ keys: { kid: string }[] }>(b.url, 'GET', '/.well-known/jwks.json')
          ).body.keys;
          expect(keys.map((k) => k.kid)).not.toContain(old.kid);
        },
        { timeout: 10_000 },
      );
      const kept = join(dir, 'retired-kept');
      mkdirSync(kept);
      writeFileSync(join(kept, 'old.json'), JSON.stringify(old, null, 2));
      // Alone, the old checkpoint's key is only vouched for by a log nothing trusted vouches for.
      const alone = await verify('--db', b.dbUrl, '--checkpoints', kept, '--server', b.url);
      expect(alone.code, alone.stderr).toBe(1);
      expect(alone.stdout).toMatch(
        new RegExp(
          `refused: checkpoint \\S+old\\.json is signed by key ${old.kid}, which the log records \\(event \\d+\\) but no trusted checkpoint vouches for`,
        ),
      );
      // With a checkpoint by the live key that the log extends, the old key is the broker's.
      writeFileSync(join(kept, 'fresh.jws'), `${fresh.jws}\n`);
      const both = await verify('--db', b.dbUrl, '--checkpoints', kept, '--server', b.url);
      expect(both.code).toBe(0);
      expect(both.stdout).toContain(`ok: 2 checkpoints verified, the latest at event ${fresh.seq}`);
      expect(both.stdout).toContain('and one checkpoint by keys the log records');
    } finally {
      await b.close();
    }
  });
});
