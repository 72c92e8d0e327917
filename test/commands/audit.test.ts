import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import {
  type Dialect,
  rawSql,
  startTestBroker,
  storeSession,
  type TestBroker,
} from '../support/broker.js';
import { runCli, testHome } from '../support/cli.js';
import type { Person } from '../support/test-issuer.js';

/**
 * `jitctl audit verify` and `audit list`, the real binary against a real broker's database (SQLite
 * and PostgreSQL) and API. Tampering is done the way an attacker with database access would: SQL
 * on the table.
 */

const home = testHome({
  JITCTL_STORE: 'file',
  JITCTL_FILE_PASSPHRASE: 'correct horse battery staple',
});
afterAll(() => home.cleanup());

async function activity(b: TestBroker): Promise<void> {
  const alice = actor(b, people.alice);
  const req = await file(alice, { role: 'prod-deploy', reason: 'hotfix' });
  await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
  await alice.post(`/v1/requests/${req.id}/credential`);
  await file(alice, { role: 'self-service' });
  await file(alice, { role: 'two-person' });
}

async function head(b: TestBroker): Promise<{ seq: number; hash: string }> {
  const rows = (await rawSql(b.dbUrl, 'select seq, hash from audit_head')) as {
    seq: number;
    hash: string;
  }[];
  return { seq: Number(rows[0]!.seq), hash: rows[0]!.hash };
}

const verify = (dbUrl: string, ...extra: string[]) =>
  runCli(['audit', 'verify', '--db', dbUrl, ...extra], { env: home.env });

describe.each<Dialect>(['sqlite', 'postgres'])('jitctl audit verify --db on %s', (dialect) => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY, dialect });
    await activity(b);
  });
  afterAll(async () => b?.close());

  it('reports an intact chain with its head, while the broker runs', async () => {
    const h = await head(b);
    expect(h.seq).toBe(7);
    const r = await verify(b.dbUrl);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`ok: 7 events, chain intact, head ${h.hash}\n`);
    const json = await verify(b.dbUrl, '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ ok: true, events: 7, head: h.hash });
  });

  it('names a changed middle event and exits 1', async () => {
    const [original] = (await rawSql(b.dbUrl, 'select data from audit_events where seq = 3')) as {
      data: string;
    }[];
    const forged = original!.data.replace(/"approvals":1/, '"approvals":2');
    expect(forged).not.toBe(original!.data);
    await rawSql(b.dbUrl, `update audit_events set data = '${forged}' where seq = 3`);
    try {
      const r = await verify(b.dbUrl);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^broken: event 3: hash does not match the event's content/);
      expect(r.stdout).toContain('2 events before it verify');
      const json = await verify(b.dbUrl, '--json');
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, events: 2, bad_event: 3 });
    } finally {
      await rawSql(b.dbUrl, `update audit_events set data = '${original!.data}' where seq = 3`);
    }
    expect((await verify(b.dbUrl)).code).toBe(0);
  });

  it('names a re-hashed event by the broken link after it', async () => {
    // Changing an event and recomputing its own hash still breaks the next event's prev_hash.
    const [row] = (await rawSql(b.dbUrl, 'select hash from audit_events where seq = 2')) as {
      hash: string;
    }[];
    await rawSql(b.dbUrl, `update audit_events set hash = '${'f'.repeat(64)}' where seq = 2`);
    try {
      const r = await verify(b.dbUrl);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^broken: event 2:/);
    } finally {
      await rawSql(b.dbUrl, `update audit_events set hash = '${row!.hash}' where seq = 2`);
    }
  });

  it('notices deleted events, in the middle and at the end', async () => {
    const all = (await rawSql(b.dbUrl, 'select * from audit_events order by seq')) as Record<
      string,
      unknown
    >[];
    const restore = async (seq: number) => {
      const row = all.find((r) => Number(r.seq) === seq)!;
      const cols = Object.keys(row);
      const values = cols.map((c) =>
        row[c] === null ? 'null' : `'${String(row[c]).replace(/'/g, "''")}'`,
      );
      await rawSql(
        b.dbUrl,
        `insert into audit_events (${cols.join(',')}) values (${values.join(',')})`,
      );
    };
    await rawSql(b.dbUrl, 'delete from audit_events where seq = 5');
    try {
      const r = await verify(b.dbUrl);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^broken: event 6: expected event 5 next/);
    } finally {
      await restore(5);
    }
    await rawSql(b.dbUrl, 'delete from audit_events where seq = 7');
    try {
      const r = await verify(b.dbUrl);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        /^broken: event 7: event 7 is missing \(the head says the log has 7 events\)/,
      );
    } finally {
      await restore(7);
    }
    expect((await verify(b.dbUrl)).code).toBe(0);
  });
});

describe('jitctl audit verify --db: bad input', () => {
  it('refuses what is not a jitctl database', async () => {
    const usage = await verify('nope');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('is not a database URL');
    const missing = await verify(`sqlite:${join(home.dir, 'missing.db')}`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot open SQLite database/);
    const empty = join(home.dir, 'empty.db');
    writeFileSync(empty, '');
    const foreign = await verify(`sqlite:${empty}`);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain('holds no jitctl audit log');
  });
});

describe('jitctl audit via the API (auditors)', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY });
    await activity(b);
  });
  afterAll(async () => b?.close());

  /** Signs `person` in for the CLI: a session in the file store of the test home. */
  async function signIn(person: Person): Promise<void> {
    const ctx = createContext({ env: home.env, io: testIO() });
    const store = await openStore(ctx, 'file');
    await storeSession(store, b, person);
  }

  it('verify walks GET /v1/audit and agrees with the database', async () => {
    await signIn(people.ada);
    const h = await head(b);
    const r = await runCli(['audit', 'verify', '--server', b.url], { env: home.env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`ok: ${h.seq} events, chain intact, head ${h.hash}\n`);
    await rawSql(b.dbUrl, `update audit_events set at = '2020-01-01T00:00:00.000Z' where seq = 3`);
    const broken = await runCli(['audit', 'verify', '--server', b.url, '--json'], {
      env: home.env,
    });
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, bad_event: 3, events: 2 });
  });

  it('list shows events as a table or JSON, with other people’s text made safe', async () => {
    await signIn(people.ada);
    await file(actor(b, people.alice), { role: 'two-person', reason: 'evil \u001b[2J\u202e' });
    // The broker's own fields too: a time and a data key as a tampered database would serve them.
    await rawSql(
      b.dbUrl,
      `update audit_events set at = '2020-01-01T00:00:00Z\u001b[2J', data = '{"\\u001b[2Jk":"v"}' where seq = 2`,
    );
    const table = await runCli(['audit', 'list', '--server', b.url, '--limit', '200'], {
      env: home.env,
    });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SEQ +AT +TYPE +REQUEST +ACTOR +DETAILS$/m);
    expect(table.stdout).toMatch(/request\.created .*Alice/);
    expect(table.stdout).toContain('reason=evil \\x1b[2J\\u202e');
    expect(table.stdout).toContain('2020-01-01T00:00:00Z\\x1b[2J');
    expect(table.stdout).toContain('\\x1b[2Jk=v');
    expect(table.stdout).not.toContain('\u001b');
    const json = await runCli(
      ['audit', 'list', '--server', b.url, '--after', '2', '--limit', '3', '--json'],
      {
        env: home.env,
      },
    );
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout) as { items: { seq: number }[]; next_after: number };
    expect(page.items.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(page.next_after).toBe(5);
    const bad = await runCli(['audit', 'list', '--server', b.url, '--limit', 'lots'], {
      env: home.env,
    });
    expect(bad.code).toBe(2);
  });

  it('is refused to people outside the auditors groups (exit 3)', async () => {
    await signIn(people.alice);
    const r = await runCli(['audit', 'list', '--server', b.url], { env: home.env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('only auditors may read the audit log');
  });
});
