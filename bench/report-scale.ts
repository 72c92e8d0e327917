/**
 * The access report over a long history: `ReportService.compute` (what `GET /v1/reports` and
 * `jitctl report` run) over 100,000 requests filed in the last 30 days, on SQLite and PostgreSQL.
 *
 *   npx tsx bench/report-scale.ts [--requests 100000] [--commands 20000] [--db sqlite|postgres|both]
 *
 * Seeded straight into a fresh, migrated database: five roles, 500 requesters, 50 approvers;
 * 80% approved (by a person, with the review), 8% denied, 7% expired unanswered, 3% revoked
 * early, 2% break-glass; a directory of the requesters; `--commands` command events in the audit
 * log. Then the report for 30 days runs three times (after one warm-up); printed: the seed time,
 * each run's time, and the heap growth of the slowest run (the work is aggregate SQL: rows per
 * role, pair or person leave the database, never the history).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Insertable, sql } from 'kysely';
import { appendAudit, type NewAuditEvent } from '../src/server/audit/log.js';
import { ReportService } from '../src/server/governance/report/compute.js';
import { parsePolicy } from '../src/server/policy/parse.js';
import { type Db, openDatabase, parseDatabaseUrl } from '../src/server/store/database.js';
import { migrateToLatest } from '../src/server/store/migrations.js';
import type { RequestsTable, ReviewsTable } from '../src/server/store/schema.js';
import { startPostgres } from '../test/support/postgres.js';
import { intFlag, stringFlag } from './support/args.js';

const ROLES = ['prod-deploy', 'db-admin', 'billing-read', 'k8s-prod', 'vault-ops'];
const POLICY = parsePolicy(
  `roles:\n${ROLES.map(
    (r) =>
      `  ${r}:\n    requesters: [group:developers, group:contractors]\n    approvers: [group:leads]\n    max_duration: 2h\n    credential: { audience: https://${r}.example.com }\n`,
  ).join('')}`,
  'policy.yaml',
);
const ISS = 'https://idp.example.com';
const DAY = 86_400_000;

async function seed(db: Db, requests: number, commands: number, now: number): Promise<void> {
  let rnd = 42;
  const random = () => {
    rnd = (rnd * 1_103_515_245 + 12_345) % 2 ** 31;
    return rnd / 2 ** 31;
  };
  const q = db.kysely;
  const people = Array.from({ length: 500 }, (_, i) => ({
    iss: ISS,
    sub: `user-${i}`,
    kind: 'person' as const,
    name: `User ${i}`,
    email: `user-${i}@example.com`,
    email_lower: `user-${i}@example.com`,
    email_verified: 1,
    groups: JSON.stringify([i % 10 === 0 ? 'contractors' : 'developers']),
    first_seen_at: now - 90 * DAY,
    last_seen_at: now - DAY,
  }));
  for (let i = 0; i < people.length; i += 100)
    await q
      .insertInto('people')
      .values(people.slice(i, i + 100))
      .execute();
  for (let i = 0; i < people.length; i += 200)
    await q
      .insertInto('people_groups')
      .values(
        people.slice(i, i + 200).map((p) => ({
          iss: ISS,
          sub: p.sub,
          group_name: (JSON.parse(p.groups) as string[])[0]!,
        })),
      )
      .execute();
  const batch = 500;
  for (let start = 0; start < requests; start += batch) {
    const rows: Insertable<RequestsTable>[] = [];
    const reviews: Insertable<ReviewsTable>[] = [];
    for (let i = start; i < Math.min(requests, start + batch); i++) {
      const created = now - Math.floor(random() * 30 * DAY);
      const duration = (15 + Math.floor(random() * 8) * 15) * 60_000;
      const who = Math.floor(random() * 500);
      const p = random();
      const decided = created + Math.floor(random() * 3_600_000);
      const approved = p < 0.85;
      const bg = p >= 0.83 && p < 0.85;
      const state =
        p < 0.8
          ? 'expired'
          : p < 0.83
            ? 'revoked'
            : bg
              ? 'expired'
              : p < 0.93
                ? 'denied'
                : 'expired';
      const id = `req_${String(i).padStart(12, '0')}`;
      rows.push({
        id,
        role: ROLES[i % ROLES.length]!,
        state,
        requester_iss: ISS,
        requester_sub: `user-${who}`,
        requester_name: `User ${who}`,
        duration_ms: duration,
        reason: 'bench',
        ticket: null,
        created_at: created,
        expires_at: approved ? decided + duration : created + 3_600_000,
        approved_at: approved ? (bg ? created : decided) : null,
        ended_at:
          state === 'revoked' ? decided + duration / 2 : approved ? decided + duration : decided,
        approvals_required: bg ? 0 : 1,
        denials_required: 1,
        approvers: '["group:leads"]',
        fingerprint: 'f',
        review_count: approved && !bg ? 1 : 0,
        idempotency_key: null,
        idempotency_hash: null,
        break_glass: bg ? 1 : 0,
        break_glass_review_by: bg ? created + DAY : null,
      });
      if ((approved && !bg) || state === 'denied')
        reviews.push({
          request_id: id,
          reviewer_iss: ISS,
          reviewer_sub: `lead-${Math.floor(random() * 50)}`,
          reviewer_name: 'Lead',
          decision: approved ? 'approve' : 'deny',
          comment: null,
          at: decided,
        });
    }
    await db.transaction(async (tx) => {
      await tx.insertInto('requests').values(rows).execute();
      if (reviews.length > 0) await tx.insertInto('reviews').values(reviews).execute();
    });
  }
  for (let start = 0; start < commands; start += 1000) {
    const events: NewAuditEvent[] = [];
    for (let i = start; i < Math.min(commands, start + 1000); i++)
      events.push({
        type: (i % 2 === 0 ? 'command.started' : 'command.ended') as NewAuditEvent['type'],
        request_id: `req_${String(i).padStart(12, '0')}`,
        actor: { iss: ISS, sub: `user-${i % 500}`, name: null },
        data: {
          role: ROLES[i % ROLES.length],
          kind: 'exec',
          command: [['kubectl', 'psql', 'vault', 'terraform'][i % 4]],
          exit_code: i % 7 === 0 ? 1 : 0,
          signal: null,
          late: false,
        },
      });
    await db.transaction((tx) =>
      appendAudit(tx, db.dialect, now - Math.floor(random() * 29 * DAY), events),
    );
  }
}

async function run(kind: 'sqlite' | 'postgres', requests: number, commands: number) {
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-report-bench-'));
  const pg = kind === 'postgres' ? await startPostgres() : undefined;
  const db = await openDatabase(parseDatabaseUrl(pg?.url ?? `sqlite:${join(dir, 'bench.db')}`));
  try {
    await migrateToLatest(db.kysely, db.dialect);
    const now = Date.now();
    let t = performance.now();
    await seed(db, requests, commands, now);
    const seedMs = performance.now() - t;
    if (kind === 'postgres') await sql`analyze`.execute(db.kysely);
    const service = new ReportService({
      db,
      clock: { now: () => now },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
    });
    await service.compute({ since: '30d' });
    const times: number[] = [];
    let heap = 0;
    for (let i = 0; i < 3; i++) {
      global.gc?.();
      const before = process.memoryUsage().heapUsed;
      t = performance.now();
      const r = await service.compute({ since: '30d' });
      times.push(performance.now() - t);
      heap = Math.max(heap, process.memoryUsage().heapUsed - before);
      if (i === 0)
        console.log(
          `${kind}: report over ${r.totals.requests} requests, ${r.totals.command_runs} command runs, ${r.roles.length} roles, ${r.findings.length} findings`,
        );
    }
    console.log(
      `${kind}: seeded in ${(seedMs / 1000).toFixed(1)} s; report ${times.map((x) => `${Math.round(x)} ms`).join(', ')}; heap growth at most ${(heap / 1e6).toFixed(1)} MB`,
    );
  } finally {
    await db.close();
    pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const requests = intFlag('requests', 100_000);
const commands = intFlag('commands', 20_000);
const which = stringFlag('db', ['sqlite', 'postgres', 'both'] as const, 'both');
for (const kind of ['sqlite', 'postgres'] as const)
  if (which === 'both' || which === kind) await run(kind, requests, commands);
