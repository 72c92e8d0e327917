/**
 * The audit log (issue #6, section 4): how fast the broker appends under load, and how long
 * `jitctl audit verify --db` takes over 1,000,000 events.
 *
 *   npx tsx bench/audit.ts [--events 1000000] [--runs 3] [--duration 5] [--clients 32]
 *                          [--verify-on sqlite|postgres|both] [--fresh] [--json]
 *                          [--verify-only] [--verify-db URL] [--bin PATH[,PATH]]
 *
 * Appends: full lifecycles (4 events each: created, review recorded, approved, credential minted)
 * from `--clients` concurrent clients against `jitctl server` on each database; the rate is the
 * audit head's sequence number before and after, over the time between (bench/support/load.ts).
 * The chain the concurrent appends left is then verified with `jitctl audit verify --db`.
 *
 * Verify: bench/seed-audit.ts writes a valid chain of `--events` events into a fresh broker
 * database (kept in the temporary directory between runs and reused while the seed script,
 * the migrations and the chain code are unchanged; `--fresh` seeds again), then the built
 * `jitctl audit verify --db … --json` runs `--runs` times as its own process, wall and CPU
 * time measured, its verdict checked (ok, and every event counted).
 *
 * For repeated verify runs: `--verify-only` skips the appends; `--verify-db URL` verifies that
 * database as it is instead of seeding one (seed it once with bench/seed-audit.ts: seeding a
 * million PostgreSQL events takes about a minute); `--bin A,B` runs the verify of two builds
 * (each a checkout's bin/jitctl.js) alternately, A B A B …, one row per build; the appends run
 * the broker of A.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BIN, ensureBuilt, ROOT } from '../scripts/ensure-built.js';
import { openDatabase, parseDatabaseUrl } from '../src/server/store/database.js';
import { seedAudit } from './seed-audit.js';
import { hasFlag, intFlag, stringFlag, valueFlag } from './support/args.js';
import { brokerHarness, type DbKind } from './support/broker.js';
import { runLoad } from './support/load.js';
import { childEnv, childrenCpuMs, NODE_START_VARIABLES } from './support/process.js';
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
import { round, summarize } from './support/stats.js';

interface Verdict {
  ok: boolean;
  events: number;
  bad_event?: number;
  reason?: string;
}

function verifyOnce(
  dbUrl: string,
  bin = BIN,
): {
  wallMs: number;
  cpuMs: number | undefined;
  verdict: Verdict;
} {
  const c0 = childrenCpuMs();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [bin, 'audit', 'verify', '--db', dbUrl, '--json'], {
    env: childEnv(),
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const wallMs = performance.now() - t0;
  const c1 = childrenCpuMs();
  let verdict: Verdict;
  try {
    verdict = JSON.parse(r.stdout) as Verdict;
  } catch {
    throw new Error(`jitctl audit verify printed no verdict (exit ${r.status}):\n${r.stderr}`);
  }
  return { wallMs, cpuMs: c0 === undefined || c1 === undefined ? undefined : c1 - c0, verdict };
}

/** Changes to any of these make a cached seeded database stale. */
function seedFingerprint(): string {
  const h = createHash('sha256');
  for (const f of [
    'bench/seed-audit.ts',
    'src/server/store/migrations.ts',
    'src/api/audit-chain.ts',
  ]) {
    h.update(readFileSync(resolve(ROOT, f)));
  }
  return h.digest('hex').slice(0, 12);
}

async function headSeq(dbUrl: string): Promise<number> {
  const db = await openDatabase(parseDatabaseUrl(dbUrl), { readonly: true, poolSize: 1 });
  try {
    const row = await db.kysely
      .selectFrom('audit_head')
      .select('seq')
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return Number(row.seq);
  } finally {
    await db.close();
  }
}

export interface AppendRow {
  db: DbKind;
  clients: number;
  seconds: number;
  events: number;
  events_per_s: number;
  lifecycles_per_s: number;
  call_p99_ms: number;
  failed_calls: number;
  chain_after: 'intact' | string;
}

export interface VerifyRow {
  db: DbKind;
  /** The build verified with (--bin), when not this checkout's. */
  bin?: string;
  events: number;
  runs: number;
  wall_s: { p50: number; min: number; max: number };
  cpu_s: number | null;
  seeded_s: number | null;
}

async function main(): Promise<void> {
  const json = hasFlag('json');
  const out = humanOut(json);
  const events = intFlag('events', 1_000_000);
  const runs = intFlag('runs', 3);
  const durationMs = intFlag('duration', 5) * 1000;
  const clients = intFlag('clients', 32);
  const verifyOn = stringFlag('verify-on', ['sqlite', 'postgres', 'both'], 'sqlite');
  const fresh = hasFlag('fresh');
  const verifyOnly = hasFlag('verify-only');
  const verifyDb = valueFlag('verify-db');
  const bins = valueFlag('bin')?.split(',') ?? [BIN];
  // The appends run one build's broker: the first of --bin when given (verify alternates them all).
  const appendBin = valueFlag('bin') ? bins[0] : undefined;
  ensureBuilt();
  const m = machine();
  const harness = await brokerHarness();
  const appends: AppendRow[] = [];
  const verifies: VerifyRow[] = [];
  try {
    for (const db of verifyOnly ? [] : (['sqlite', 'postgres'] as const)) {
      progress(`audit: appends under load on ${db}, ${clients} clients`);
      const b = await harness.start(db, appendBin ? { bin: appendBin } : {});
      try {
        const before = await headSeq(b.dbUrl);
        const t0 = performance.now();
        const r = await runLoad({
          url: b.url,
          clients,
          durationMs,
          warmupMs: 0,
          op: async (_s, http) => {
            const created = (await http.call('POST', '/v1/requests', b.requester, {
              role: 'bench',
              reason: 'benchmark',
            })) as { id: string };
            await http.call('POST', `/v1/requests/${created.id}/reviews`, b.approver, {
              decision: 'approve',
            });
            await http.call('POST', `/v1/requests/${created.id}/credential`, b.requester, {});
          },
        });
        const seconds = (performance.now() - t0) / 1000;
        const after = await headSeq(b.dbUrl);
        const v = verifyOnce(b.dbUrl).verdict;
        appends.push({
          db,
          clients,
          seconds: round(seconds, 2),
          events: after - before,
          events_per_s: Math.round((after - before) / seconds),
          lifecycles_per_s: r.ops_per_s,
          call_p99_ms: r.call_ms.p99,
          failed_calls: Object.values(r.errors).reduce((a, b) => a + b, 0),
          chain_after: v.ok ? 'intact' : `BROKEN at ${v.bad_event}: ${v.reason}`,
        });
      } finally {
        await b.stop();
      }
    }

    const verifyDbs: DbKind[] = verifyDb
      ? [verifyDb.startsWith('sqlite:') ? 'sqlite' : 'postgres']
      : verifyOn === 'both'
        ? ['sqlite', 'postgres']
        : [verifyOn];
    for (const db of verifyDbs) {
      let dbUrl: string;
      let seededS: number | null = null;
      if (verifyDb) {
        dbUrl = verifyDb;
        progress('audit: verifying the given database as it is (--verify-db)');
      } else if (db === 'sqlite') {
        const path = join(tmpdir(), `jitctl-bench-audit-${events}-${seedFingerprint()}.db`);
        dbUrl = `sqlite:${path}`;
        if (fresh || !existsSync(path)) {
          for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
          progress(`audit: seeding ${events.toLocaleString('en-US')} events into ${path}`);
          try {
            seededS = round((await seedAudit(dbUrl, events)).seconds, 1);
          } catch (err) {
            rmSync(path, { force: true });
            throw err;
          }
        } else {
          progress(`audit: reusing the seeded ${path} (--fresh seeds again)`);
        }
      } else {
        dbUrl = await harness.freshDatabase('postgres');
        progress(`audit: seeding ${events.toLocaleString('en-US')} events into PostgreSQL`);
        seededS = round((await seedAudit(dbUrl, events)).seconds, 1);
      }
      progress(`audit: jitctl audit verify --db (${db}), ${runs} runs of ${bins.length} build(s)`);
      const walls = bins.map(() => [] as number[]);
      const cpu = bins.map(() => 0);
      let cpuKnown = true;
      for (let i = 0; i < runs; i++) {
        // Builds alternate within each round, so a change in the machine's load hits both.
        for (const [b, bin] of bins.entries()) {
          const r = verifyOnce(dbUrl, bin);
          if (!r.verdict.ok || r.verdict.events !== events) {
            throw new Error(
              `verify over the seeded ${db} log said ${JSON.stringify(r.verdict)}; expected ok with ${events} events`,
            );
          }
          walls[b]!.push(r.wallMs / 1000);
          if (r.cpuMs === undefined) cpuKnown = false;
          else cpu[b]! += r.cpuMs / 1000;
        }
      }
      for (const [b, bin] of bins.entries()) {
        const s = summarize(walls[b]!);
        verifies.push({
          db,
          ...(bin === BIN ? {} : { bin }),
          events,
          runs,
          wall_s: { p50: round(s.p50, 2), min: round(s.min, 2), max: round(s.max, 2) },
          cpu_s: cpuKnown ? round(cpu[b]! / runs, 2) : null,
          seeded_s: seededS,
        });
      }
    }
  } finally {
    await harness.close();
  }

  const goals: GoalResult[] = verifies.map((v) =>
    checkGoal({
      what: `${v.db}${v.bin ? ` (${v.bin})` : ''}: jitctl audit verify --db over ${v.events.toLocaleString('en-US')} events (median wall)`,
      value: v.wall_s.p50,
      limit: 3,
      kind: 'max',
      unit: ' s',
    }),
  );
  const figures = { section: 'audit', appends, verifies, goals, machine: m };
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  out('4. Audit log: appends under load, and `jitctl audit verify --db`');
  out(
    `   Appends: lifecycles (4 events each) from ${clients} clients for ${durationMs / 1000} s; events/s from the audit head before and after;\n` +
      '   the chain is verified afterwards. The load generator shares the cores with the broker.',
  );
  out(
    table(
      [
        'db',
        'clients',
        'events',
        'events/s',
        'lifecycles/s',
        'call p99 ms',
        'failed',
        'chain after',
      ],
      appends.map((a) => [
        a.db,
        a.clients,
        a.events,
        a.events_per_s,
        a.lifecycles_per_s,
        a.call_p99_ms,
        a.failed_calls,
        a.chain_after,
      ]),
    ),
  );
  out(
    `   Verify: the built CLI as its own process (without ${NODE_START_VARIABLES.join('/')}), over a seeded valid chain.`,
  );
  out(
    table(
      ['db', 'build', 'events', 'runs', 'wall p50 s', 'min s', 'max s', 'CPU s', 'seeded in s'],
      verifies.map((v) => [
        v.db,
        v.bin ?? 'this checkout',
        v.events,
        v.runs,
        v.wall_s.p50,
        v.wall_s.min,
        v.wall_s.max,
        v.cpu_s ?? Number.NaN,
        v.seeded_s ?? 'cached',
      ]),
    ),
  );
  out(describeGoals(goals));
  out(`   machine: ${describeMachine(m)}\n`);
}

await main();
