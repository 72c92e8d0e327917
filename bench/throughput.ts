/**
 * Broker throughput (issue #6, section 3): requests created per second, full lifecycles (create,
 * approve, mint) per second and credential mints per second, each at 1, 8 and 32 concurrent
 * clients, on SQLite on disk and on PostgreSQL.
 *
 *   npx tsx bench/throughput.ts [--db sqlite|postgres|both] [--clients 1,8,32] [--duration 5]
 *                               [--scenario create|lifecycle|mint|all] [--warmup 1] [--json]
 *                               [--profile DIR] [--bin PATH] [--node-args "--require x.cjs"]
 *
 * The broker is `jitctl server` from the built bundle in its own process (bench/support/broker.ts);
 * the load generator (bench/support/load.ts, undici, one keep-alive connection per client) runs
 * in this process. Both share the machine's cores, so on a 2-core machine the generator's own
 * CPU is taken from the broker: the figures are a floor, and the output says how many cores
 * there were. Every call carries a real ID token (verified once, then cached by the broker, as
 * for a fleet of CLIs), creates carry an Idempotency-Key as the CLI sends, and every write is a
 * transaction with its audit event. `--profile DIR` runs the broker under `node --cpu-prof`;
 * `--bin PATH` runs another build's bin/jitctl.js (to compare a change before committing it);
 * `--node-args` are given to the broker's node (e.g. a `--require` that traces statements). Each
 * row has the broker's own CPU time per call (/proc/PID/stat over the measured window), the figure
 * to compare builds by on a shared machine.
 */
import { randomUUID } from 'node:crypto';
import { ensureBuilt } from '../scripts/ensure-built.js';
import { hasFlag, intFlag, listFlag, stringFlag, valueFlag } from './support/args.js';
import { type BenchBroker, brokerHarness, type DbKind } from './support/broker.js';
import { type Http, type LoadOptions, type LoadResult, runLoad } from './support/load.js';
import { processCpuMs } from './support/process.js';
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

interface Created {
  id: string;
  state: string;
}

const create = async (b: BenchBroker, http: Http, as = b.requester): Promise<Created> =>
  (await http.call(
    'POST',
    '/v1/requests',
    as,
    { role: 'bench', duration: '15m', reason: 'benchmark' },
    { 'idempotency-key': randomUUID() },
  )) as Created;

const approve = async (b: BenchBroker, http: Http, id: string): Promise<void> => {
  const r = (await http.call('POST', `/v1/requests/${id}/reviews`, b.approver, {
    decision: 'approve',
  })) as Created;
  if (r.state !== 'approved') throw new Error(`approving ${id} left it ${r.state}`);
};

const mint = async (b: BenchBroker, http: Http, id: string): Promise<void> => {
  const r = (await http.call('POST', `/v1/requests/${id}/credential`, b.requester, {})) as {
    token?: string;
  };
  if (typeof r.token !== 'string') throw new Error(`minting for ${id} returned no token`);
};

/** What each client runs against broker `b`: `op` in a loop, after `setup` (an approved request). */
type Work = Pick<LoadOptions<string>, 'setup' | 'op'>;

const SCENARIOS = {
  healthz: {
    what: 'calibration: GET /healthz (no auth, no db)',
    work: (b: BenchBroker): Work => ({
      op: async (_s, http) => {
        await http.call('GET', '/healthz', b.requester);
      },
    }),
  },
  create: {
    what: 'requests created (POST /v1/requests)',
    // Requests pile up pending here, and one person may have at most max_pending (100) of a role
    // at once: each client files as its own developer and moves to a new one every 100 requests
    // (new names in every cell: the requests of the cells before stay pending).
    work: (b: BenchBroker): Work => {
      const cell = randomUUID().slice(0, 8);
      const who = new Map<string, { token: string; filed: number; people: number }>();
      return {
        setup: async (w) => {
          who.set(`${w}`, {
            token: await b.requesterToken(`bench-dev-${cell}-${w}-0`),
            filed: 0,
            people: 1,
          });
          return `${w}`;
        },
        op: async (w, http) => {
          const me = who.get(w)!;
          if (me.filed === 100) {
            me.token = await b.requesterToken(`bench-dev-${cell}-${w}-${me.people++}`);
            me.filed = 0;
          }
          me.filed++;
          await create(b, http, me.token);
        },
      };
    },
  },
  lifecycle: {
    what: 'lifecycles (create, approve, mint: 3 calls)',
    work: (b: BenchBroker): Work => ({
      op: async (_s, http) => {
        const { id } = await create(b, http);
        await approve(b, http, id);
        await mint(b, http, id);
      },
    }),
  },
  mint: {
    what: 'credentials minted (POST …/credential)',
    work: (b: BenchBroker): Work => ({
      setup: async (_w, http) => {
        const { id } = await create(b, http);
        await approve(b, http, id);
        return id;
      },
      op: (id, http) => mint(b, http, id),
    }),
  },
};
type Scenario = keyof typeof SCENARIOS;
const SCENARIO_NAMES = Object.keys(SCENARIOS) as Scenario[];

export interface ThroughputRow extends LoadResult {
  db: DbKind;
  scenario: Scenario;
}

async function main(): Promise<void> {
  const json = hasFlag('json');
  const out = humanOut(json);
  const dbChoice = stringFlag('db', ['sqlite', 'postgres', 'both'], 'both');
  const clientCounts = listFlag('clients', [1, 8, 32]);
  const durationMs = intFlag('duration', 5) * 1000;
  const warmupMs = intFlag('warmup', 1) * 1000;
  const profileDir = valueFlag('profile');
  const bin = valueFlag('bin');
  const nodeArgs = valueFlag('node-args');
  const dbs: DbKind[] = dbChoice === 'both' ? ['sqlite', 'postgres'] : [dbChoice];
  const only = stringFlag('scenario', [...SCENARIO_NAMES, 'all'], 'all');
  const scenarios = only === 'all' ? SCENARIO_NAMES : [only];
  ensureBuilt();
  const m = machine();
  const harness = await brokerHarness();
  const rows: ThroughputRow[] = [];
  try {
    for (const db of dbs) {
      progress(`throughput: starting a broker on ${db}`);
      const b = await harness.start(db, {
        nodeArgs: [
          ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
          ...(nodeArgs ? nodeArgs.split(' ') : []),
        ],
        ...(bin ? { bin } : {}),
      });
      try {
        for (const s of scenarios) {
          for (const clients of clientCounts) {
            progress(`${db}: ${s} with ${clients} client${clients === 1 ? '' : 's'}`);
            rows.push({
              db,
              scenario: s,
              ...(await runLoad({
                url: b.url,
                clients,
                durationMs,
                warmupMs,
                serverCpuMs: () => processCpuMs(b.child.pid!),
                ...SCENARIOS[s].work(b),
              })),
            });
          }
        }
      } finally {
        await b.stop();
      }
    }
  } finally {
    await harness.close();
  }

  const maxClients = Math.max(...clientCounts);
  const goals: GoalResult[] = [];
  for (const db of dbs) {
    if (only !== 'all') break;
    const at = (s: Scenario) =>
      rows.find((r) => r.db === db && r.scenario === s && r.clients === maxClients)!;
    // Issue 17's goals: SQLite ≥ 1,000 lifecycles/s, call p99 < 50 ms, ≥ 5,000 mints/s;
    // PostgreSQL ≥ 500 lifecycles/s and ≥ 2,000 mints/s.
    const sqlite = db === 'sqlite';
    goals.push(
      checkGoal({
        what: `${db}: lifecycles/s at ${maxClients} clients`,
        value: at('lifecycle').ops_per_s,
        limit: sqlite ? 1000 : 500,
        kind: 'min',
        unit: '/s',
      }),
      ...(sqlite
        ? [
            checkGoal({
              what: `${db}: p99 of a lifecycle's calls at ${maxClients} clients`,
              value: at('lifecycle').call_ms.p99,
              limit: 50,
              kind: 'max',
              unit: ' ms',
            }),
          ]
        : []),
      checkGoal({
        what: `${db}: mints/s at ${maxClients} clients`,
        value: at('mint').ops_per_s,
        limit: sqlite ? 5000 : 2000,
        kind: 'min',
        unit: '/s',
      }),
    );
  }
  const figures = {
    section: 'throughput',
    duration_s: durationMs / 1000,
    warmup_s: warmupMs / 1000,
    rows,
    goals,
    machine: m,
  };
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  out('3. Broker throughput: `jitctl server` on 127.0.0.1, load from a separate process');
  out(
    `   ${durationMs / 1000} s per cell after a ${warmupMs / 1000} s warm-up; closed loop, one keep-alive connection per client.\n` +
      `   The load generator shares the ${m.cpus} cores with the broker (and the database). SQLite: a file on disk, WAL,\n` +
      '   synchronous=NORMAL. PostgreSQL: a throwaway local cluster with fsync and synchronous_commit off.\n' +
      '   op = one operation (a lifecycle is 3 calls); call = one HTTP request. Latencies in ms.\n' +
      "   broker CPU ms/call: the broker process's user + system CPU over the measured window (/proc/PID/stat) ÷ calls.",
  );
  out(
    table(
      [
        'db',
        'what',
        'clients',
        'ops/s',
        'op p50',
        'op p99',
        'calls/s',
        'call p50',
        'call p99',
        'broker CPU ms/call',
        'failed',
      ],
      rows.map((r) => [
        r.db,
        SCENARIOS[r.scenario].what,
        r.clients,
        r.ops_per_s,
        r.op_ms.p50,
        r.op_ms.p99,
        r.calls_per_s,
        r.call_ms.p50,
        r.call_ms.p99,
        r.server_cpu_ms_per_call ?? '–',
        Object.entries(r.errors)
          .map(([k, v]) => `${v}×${k}`)
          .join(' ') || '0',
      ]),
    ),
  );
  out(describeGoals(goals));
  out(`   machine: ${describeMachine(m)}\n`);
}

await main();
