/**
 * Fills a broker database with a valid audit chain of N events, fast: the schema comes from the
 * broker's own migrations, events are what the broker writes for a request's lifecycle (created,
 * review recorded, approved, credential minted, with realistic actors and data), hashed exactly
 * as the broker hashes them (src/api/audit-chain.ts), and inserted in batches inside transactions
 * (better-sqlite3 prepared statements; PostgreSQL multi-row inserts). The head row is set last, as
 * the broker would leave it, so `jitctl audit verify --db` sees an intact log.
 *
 *   npx tsx bench/seed-audit.ts --db sqlite:/tmp/audit.db [--events 1000000]
 *   npx tsx bench/seed-audit.ts --db postgres://user@host/db [--events 1000000]
 *
 * The database must be new or empty of audit events (it refuses to extend someone's log).
 */
import { canonicalJson, GENESIS_HASH, storedEventHash } from '../src/api/audit-chain.js';
import { openDatabase, parseDatabaseUrl } from '../src/server/store/database.js';
import { migrateToLatest } from '../src/server/store/migrations.js';
import { intFlag, valueFlag } from './support/args.js';

export interface SeededAudit {
  events: number;
  head: string;
  seconds: number;
}

interface Row {
  seq: number;
  at: string;
  type: string;
  request_id: string;
  actor: string;
  data: string;
  prev_hash: string;
  hash: string;
}

const ISS = 'https://idp.example.com';
const people = Array.from({ length: 50 }, (_, i) => ({
  iss: ISS,
  sub: `00u${(1e6 + i * 7919).toString(36)}`,
  name: `Engineer ${i}`,
}));
const LEADS = 8;
const roles = ['prod-deploy', 'db-admin', 'billing-read', 'k8s-prod', 'vault-ops'];
const actors = people.map((p) => canonicalJson(p));

/**
 * Ids and nonces for synthetic events: a fast PRNG (xorshift) in place of the CSPRNG the broker
 * uses, since nothing here is secret and a million CSPRNG calls would dominate the seeding.
 */
let state = 0x9e3779b9;
function token(
  length: number,
  alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789',
): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out += alphabet[(state >>> 0) % alphabet.length];
  }
  return out;
}

/**
 * canonicalJson for the flat objects below, whose keys are written in code-unit order and whose
 * values are strings and integers: JSON.stringify then yields the same text, several times faster.
 * The first lifecycle is checked against canonicalJson itself.
 */
const flat = (o: Record<string, string | number | null>): string => JSON.stringify(o);

/** The events of one request's lifecycle, from `seq` on, as the broker appends them. */
function* lifecycle(
  n: number,
  startMs: number,
): Generator<Omit<Row, 'seq' | 'prev_hash' | 'hash'>> {
  const id = `req_${token(12)}`;
  const requester = actors[n % actors.length]!;
  const lead = actors[n % LEADS]!;
  const role = roles[n % roles.length]!;
  const at = (offsetMs: number) => new Date(startMs + offsetMs).toISOString();
  const expires = new Date(startMs + 3_600_000).toISOString();
  yield {
    at: at(0),
    type: 'request.created',
    request_id: id,
    actor: requester,
    data: flat({
      approvals_required: 1,
      denials_required: 1,
      duration: '15m',
      expires_at: expires,
      fingerprint: token(16, '0123456789abcdef'),
      reason: `hotfix INC-${4000 + (n % 997)}: roll out the fix for the checkout latency regression`,
      role,
      ticket: `INC-${4000 + (n % 997)}`,
    }),
  };
  yield {
    at: at(40_000),
    type: 'review.recorded',
    request_id: id,
    actor: lead,
    data: flat({ approvals: 1, comment: 'looks right', decision: 'approve', denials: 0 }),
  };
  yield {
    at: at(40_000),
    type: 'request.approved',
    request_id: id,
    actor: lead,
    data: flat({
      approvals: 1,
      approvals_required: 1,
      duration: '15m',
      expires_at: new Date(startMs + 940_000).toISOString(),
    }),
  };
  yield {
    at: at(41_000),
    type: 'credential.minted',
    request_id: id,
    actor: requester,
    data: flat({
      aud: `https://${role}.example.com`,
      exp: new Date(startMs + 940_000).toISOString(),
      iat: at(41_000),
      jti: token(22),
      kid: 'bench-signing-key-thumbprint-0123456789abcdef',
    }),
  };
}

export async function seedAudit(dbUrl: string, events: number): Promise<SeededAudit> {
  const t0 = performance.now();
  const db = await openDatabase(parseDatabaseUrl(dbUrl));
  try {
    await migrateToLatest(db.kysely, db.dialect);
    const existing = await db.kysely
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    if (Number(existing.n) > 0) {
      throw new Error(
        `${db.description} already holds ${existing.n} audit events; seed a new database`,
      );
    }
    let prev = GENESIS_HASH;
    let seq = 0;
    const start = Date.now() - events * 10_000;
    let n = 0;
    let source = lifecycle(n, start);
    const next = (): Row => {
      let e = source.next();
      if (e.done) {
        n++;
        source = lifecycle(n, start + n * 40_000);
        e = source.next();
      }
      const content = e.value as Omit<Row, 'seq' | 'prev_hash' | 'hash'>;
      if (n === 0 && canonicalJson(JSON.parse(content.data)) !== content.data) {
        throw new Error(`seed-audit: ${content.type} data is not canonical JSON: ${content.data}`);
      }
      seq++;
      const hash = storedEventHash(prev, { ...content, seq });
      const row = { ...content, seq, prev_hash: prev, hash };
      prev = hash;
      return row;
    };

    if (db.sqlite) {
      const raw = db.sqlite;
      // A bulk load into a throwaway file: no journal, no syncs, a large page cache, and the
      // indexes of audit_events rebuilt once at the end (sorted, from their own definitions in
      // sqlite_master) instead of taking a million random inserts. The file is left in WAL mode
      // with the indexes the broker's migrations made, as a broker would leave it.
      raw.pragma('cache_size = -262144');
      raw.pragma('journal_mode = OFF');
      raw.pragma('synchronous = OFF');
      const indexes = raw
        .prepare(
          "select name, sql from sqlite_master where type = 'index' and tbl_name = 'audit_events' and sql is not null",
        )
        .all() as Array<{ name: string; sql: string }>;
      for (const i of indexes) raw.exec(`drop index ${i.name}`);
      const insert = raw.prepare(
        'insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const batch = raw.transaction((count: number) => {
        for (let i = 0; i < count; i++) {
          const r = next();
          insert.run(r.seq, r.at, r.type, r.request_id, r.actor, r.data, r.prev_hash, r.hash);
        }
      });
      for (let done = 0; done < events; done += 20_000) batch(Math.min(20_000, events - done));
      raw.prepare('update audit_head set seq = ?, hash = ? where id = 1').run(seq, prev);
      for (const i of indexes) raw.exec(i.sql);
      raw.pragma('journal_mode = WAL');
    } else {
      const BATCH = 2_000;
      for (let done = 0; done < events; done += BATCH) {
        const rows = Array.from({ length: Math.min(BATCH, events - done) }, next);
        await db.transaction(async (tx) => {
          await tx.insertInto('audit_events').values(rows).execute();
        });
      }
      await db.kysely
        .updateTable('audit_head')
        .set({ seq, hash: prev })
        .where('id', '=', 1)
        .execute();
    }
    return { events: seq, head: prev, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await db.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = valueFlag('db');
  if (!url) throw new Error('--db sqlite:PATH or --db postgres://… is required');
  const events = intFlag('events', 1_000_000);
  const r = await seedAudit(url, events);
  process.stdout.write(
    `seeded ${r.events.toLocaleString('en-US')} events in ${r.seconds.toFixed(1)} s; head ${r.head}\n`,
  );
}
