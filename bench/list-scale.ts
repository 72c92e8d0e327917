/**
 * Scale of data (issue #6, section 5): `GET /v1/requests?state=pending` with 100,000 stored
 * requests, p50 and p99, on SQLite and PostgreSQL.
 *
 *   npx tsx bench/list-scale.ts [--requests 100000] [--samples 300] [--db sqlite|postgres|both]
 *                               [--bin PATH] [--profile DIR] [--json]
 *
 * The requests are seeded straight into a fresh broker database (the broker's own migrations,
 * ids and fingerprints) with the spread of a busy deployment: five roles, 200 requesters, mostly
 * finished requests (expired, denied, cancelled, revoked), 3% approved within their window and
 * 2% pending, each reviewed request with its review. Then `jitctl server` serves it and each
 * query runs `--samples` times, one at a time after a warm-up, as three callers: a lead who
 * reviews all five roles (one keyset branch per role, merged), an auditor (sees everything: one
 * index walk) and a requester asking for their own pending requests. Latency is the HTTP round
 * trip of a 50-item page on a keep-alive connection. `--bin PATH` serves with another build's
 * bin/jitctl.js (to compare a change).
 */
import { performance } from 'node:perf_hooks';
import { type Insertable, sql } from 'kysely';
import { Pool } from 'undici';
import { ensureBuilt } from '../scripts/ensure-built.js';
import { newRequestId } from '../src/server/requests/ids.js';
import { fingerprintOf } from '../src/server/requests/wire.js';
import { openDatabase, parseDatabaseUrl } from '../src/server/store/database.js';
import { migrateToLatest } from '../src/server/store/migrations.js';
import type { RequestsTable, ReviewsTable } from '../src/server/store/schema.js';
import { hasFlag, intFlag, stringFlag, valueFlag } from './support/args.js';
import { brokerHarness, type DbKind } from './support/broker.js';
import {
  checkGoal,
  describeGoals,
  describeMachine,
  type GoalResult,
  humanOut,
  machine,
  progress,
  table,
} from './support/report.js';
import { roundSummary, type Summary, summarize } from './support/stats.js';

const ROLES = ['prod-deploy', 'db-admin', 'billing-read', 'k8s-prod', 'vault-ops'];
const POLICY = `roles:\n${ROLES.map(
  (r) => `  ${r}:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    credential:
      audience: https://${r}.example.com
`,
).join('')}`;

/** Fills `dbUrl` with `count` requests; returns how many are pending. */
async function seedRequests(dbUrl: string, count: number, issuer: string): Promise<number> {
  const db = await openDatabase(parseDatabaseUrl(dbUrl));
  let pending = 0;
  try {
    await migrateToLatest(db.kysely, db.dialect);
    const now = Date.now();
    const BATCH = 500;
    for (let done = 0; done < count; done += BATCH) {
      const rows: Array<Omit<Insertable<RequestsTable>, 'seq'>> = [];
      const reviews: Array<Insertable<ReviewsTable>> = [];
      for (let i = done; i < Math.min(count, done + BATCH); i++) {
        // Oldest first, so seq order is time order, as the broker would have written them.
        const created = now - (count - i) * 30_000;
        const pick = (i * 7919) % 100;
        const state =
          i >= count - 5000 && pick < 40
            ? 'pending'
            : pick < 3
              ? 'approved'
              : pick < 73
                ? 'expired'
                : pick < 83
                  ? 'denied'
                  : pick < 93
                    ? 'cancelled'
                    : 'revoked';
        const live = state === 'pending' || state === 'approved';
        if (state === 'pending') pending++;
        const base = {
          id: newRequestId(),
          role: ROLES[i % ROLES.length]!,
          requester_iss: issuer,
          requester_sub: i % 200 === 0 ? 'bench-dev' : `user-${i % 200}`,
          duration_ms: 15 * 60_000,
          reason: `INC-${i}: investigate the alert`,
          ticket: `INC-${i}`,
          created_at: live ? now - 60_000 : created,
        };
        const reviewed = state === 'approved' || state === 'denied' || state === 'revoked';
        rows.push({
          ...base,
          state,
          requester_name: `User ${i % 200}`,
          expires_at: live ? now + 3_600_000 : created + 3_600_000,
          approved_at: state === 'approved' || state === 'revoked' ? created + 60_000 : null,
          ended_at: live ? null : created + 120_000,
          approvals_required: 1,
          denials_required: 1,
          approvers: '["group:leads"]',
          fingerprint: fingerprintOf(base),
          review_count: reviewed ? 1 : 0,
          idempotency_key: null,
          idempotency_hash: null,
        });
        if (reviewed) {
          reviews.push({
            request_id: base.id,
            reviewer_iss: issuer,
            reviewer_sub: `lead-${i % 8}`,
            reviewer_name: `Lead ${i % 8}`,
            decision: state === 'denied' ? 'deny' : 'approve',
            comment: null,
            at: created + 60_000,
          });
        }
      }
      await db.transaction(async (tx) => {
        await tx.insertInto('requests').values(rows).execute();
        if (reviews.length > 0) await tx.insertInto('reviews').values(reviews).execute();
      });
    }
    if (db.sqlite) db.sqlite.pragma('optimize');
    else await sql`analyze`.execute(db.kysely);
  } finally {
    await db.close();
  }
  return pending;
}

interface Query {
  who: string;
  path: string;
  token: 'approver' | 'auditor' | 'requester';
}

const QUERIES: Query[] = [
  { who: 'lead (reviews 5 roles)', path: '/v1/requests?state=pending', token: 'approver' },
  { who: 'auditor (sees all)', path: '/v1/requests?state=pending', token: 'auditor' },
  { who: 'requester', path: '/v1/requests?state=pending&mine=true', token: 'requester' },
];

export interface ListRow {
  db: DbKind;
  requests: number;
  pending: number;
  who: string;
  path: string;
  items: number;
  ms: Summary;
}

async function main(): Promise<void> {
  const json = hasFlag('json');
  const out = humanOut(json);
  const count = intFlag('requests', 100_000);
  const samples = intFlag('samples', 300);
  const which = stringFlag('db', ['sqlite', 'postgres', 'both'], 'both');
  const bin = valueFlag('bin');
  ensureBuilt();
  // `--profile DIR`: the broker runs under `node --cpu-prof` (a profile per database in DIR).
  const profileDir = valueFlag('profile');
  const m = machine();
  const harness = await brokerHarness();
  const rows: ListRow[] = [];
  try {
    for (const db of which === 'both' ? (['sqlite', 'postgres'] as const) : [which]) {
      const dbUrl = await harness.freshDatabase(db);
      progress(`list: seeding ${count.toLocaleString('en-US')} requests (${db})`);
      const pending = await seedRequests(dbUrl, count, harness.issuer.issuer);
      const b = await harness.start(db, {
        dbUrl,
        policy: POLICY,
        ...(bin ? { bin } : {}),
        ...(profileDir ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] } : {}),
      });
      const pool = new Pool(b.url, { connections: 1 });
      try {
        for (const q of QUERIES) {
          progress(`list (${db}): ${q.who} GET ${q.path}, ${samples} samples`);
          const token = b[q.token];
          let items = 0;
          const once = async () => {
            const t0 = performance.now();
            const res = await pool.request({
              method: 'GET',
              path: q.path,
              headers: { authorization: `Bearer ${token}` },
            });
            const text = await res.body.text();
            const ms = performance.now() - t0;
            if (res.statusCode !== 200) throw new Error(`GET ${q.path}: ${res.statusCode} ${text}`);
            items = (JSON.parse(text) as { items: unknown[] }).items.length;
            return ms;
          };
          for (let i = 0; i < 30; i++) await once();
          const ms: number[] = [];
          for (let i = 0; i < samples; i++) ms.push(await once());
          rows.push({
            db,
            requests: count,
            pending,
            who: q.who,
            path: q.path,
            items,
            ms: roundSummary(summarize(ms), 2),
          });
        }
      } finally {
        await pool.close();
        await b.stop();
      }
    }
  } finally {
    await harness.close();
  }
  const goals: GoalResult[] = rows
    .filter((r) => r.who.startsWith('lead'))
    .flatMap((r) => [
      checkGoal({
        what: `${r.db}: GET ${r.path} as a lead, p50`,
        value: r.ms.p50,
        limit: 20,
        kind: 'max',
        unit: ' ms',
      }),
      checkGoal({
        what: `${r.db}: GET ${r.path} as a lead, p99`,
        value: r.ms.p99,
        limit: 20,
        kind: 'max',
        unit: ' ms',
      }),
    ]);
  const figures = { section: 'list', rows, goals, machine: m };
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  out(`5. Scale of data: listing with ${count.toLocaleString('en-US')} stored requests`);
  out(
    `   ${samples} sequential samples per row after 30 warm-up calls; HTTP round trip of one page (50 items) on a\n` +
      '   keep-alive connection to `jitctl server`. Latencies in ms.',
  );
  out(
    table(
      ['db', 'caller', 'query', 'pending', 'items', 'p50', 'p90', 'p99', 'max'],
      rows.map((r) => [
        r.db,
        r.who,
        r.path,
        r.pending,
        r.items,
        r.ms.p50,
        r.ms.p90,
        r.ms.p99,
        r.ms.max,
      ]),
    ),
  );
  out(describeGoals(goals));
  out(`   machine: ${describeMachine(m)}\n`);
}

await main();
