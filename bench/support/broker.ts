import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../../scripts/ensure-built.js';
import { startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import { startTestIssuer, type TestIssuer } from '../../test/support/test-issuer.js';

/**
 * A broker for the benchmarks, run as users run it: `jitctl server` from the built bundle in its
 * own process (so the load generator never shares its event loop), on 127.0.0.1 port 0, against
 * a real OpenID issuer (test/support/test-issuer.ts, in the benchmark's process: the broker
 * fetches its JWKS once and caches verified tokens, as it would in production) and either a
 * SQLite file on disk or a throwaway PostgreSQL cluster (test/support/postgres.ts: fsync and
 * synchronous_commit off, like SQLite's WAL with synchronous=NORMAL here, so both measure the
 * broker rather than the disk). Logs are at the production level (info), one JSON line per
 * request, read from a pipe and dropped, as a log collector would take them.
 */

export const BENCH_POLICY = `
roles:
  bench:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    # 32 clients each hold a pending request of one requester at once in a lifecycle loop.
    max_pending: 100
    credential:
      audience: https://bench.example.com
      env: { BENCH_TOKEN: "{{token}}" }
`;

export type DbKind = 'sqlite' | 'postgres';

export interface BenchBroker {
  url: string;
  db: DbKind;
  /** The database URL the broker uses (to seed or inspect it directly). */
  dbUrl: string;
  /** A developer's ID token (requests bench), and a lead's (reviews it). */
  requester: string;
  approver: string;
  /** An auditor's token (reads the audit log). */
  auditor: string;
  /** An ID token of another developer (`sub`), for loads that outgrow one person's max_pending. */
  requesterToken(sub: string): Promise<string>;
  child: ChildProcess;
  /** Stops the broker (SIGTERM, graceful) and removes its data; keeps the issuer and cluster. */
  stop(): Promise<void>;
}

export interface BrokerHarness {
  issuer: TestIssuer;
  start(
    db: DbKind,
    opts?: { nodeArgs?: string[]; dbUrl?: string; bin?: string; policy?: string },
  ): Promise<BenchBroker>;
  /** A new empty database: a SQLite file in a temporary directory, or a new PostgreSQL database. */
  freshDatabase(db: DbKind): Promise<string>;
  close(): Promise<void>;
}

/** `jitctl server` in its own process; resolves with its URL once it listens. */
async function launch(
  o: { nodeArgs: string[]; bin: string; dbUrl: string; root: string; issuer: TestIssuer },
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [
      ...o.nodeArgs,
      o.bin,
      'server',
      '--listen',
      '127.0.0.1:0',
      '--db',
      o.dbUrl,
      '--policy',
      join(o.root, 'policy.yaml'),
      '--oidc-issuer',
      o.issuer.issuer,
      '--oidc-client-id',
      o.issuer.clientId,
    ],
    { cwd: o.root, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.resume();
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (c: Buffer) => {
      stderr += c.toString();
      const m = /jitctl broker listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        child.stderr!.off('data', onData);
        child.off('exit', onExit);
        child.stderr!.resume();
        resolve(m[1]!);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`the broker exited (${code}) before listening:\n${stderr}`));
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
  return { child, url };
}

/** The issuer and (on first use) the PostgreSQL cluster, shared by every broker started. */
export async function brokerHarness(): Promise<BrokerHarness> {
  const issuer = await startTestIssuer();
  let pg: TestPostgres | undefined;
  let pgDbs = 0;
  const roots: string[] = [];

  const freshPostgresDb = async (): Promise<string> => {
    pg ??= await startPostgres();
    // A new database per broker, so each run starts from empty tables.
    const name = `bench_${process.pid}_${++pgDbs}`;
    const { default: pgLib } = await import('pg');
    const admin = new pgLib.Client({ connectionString: pg.url });
    await admin.connect();
    try {
      await admin.query(`create database ${name}`);
    } finally {
      await admin.end();
    }
    const u = new URL(pg.url);
    u.pathname = `/${name}`;
    return u.toString();
  };

  const freshSqlite = (): string => {
    const root = mkdtempSync(join(tmpdir(), 'jitctl-bench-db-'));
    roots.push(root);
    return `sqlite:${join(root, 'broker.db')}`;
  };

  return {
    issuer,
    freshDatabase: async (db) => (db === 'sqlite' ? freshSqlite() : freshPostgresDb()),
    async start(db, opts = {}) {
      const root = mkdtempSync(join(tmpdir(), 'jitctl-bench-broker-'));
      roots.push(root);
      const dbUrl =
        opts.dbUrl ??
        (db === 'sqlite' ? `sqlite:${join(root, 'broker.db')}` : await freshPostgresDb());
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: root,
        NO_COLOR: '1',
        // Reviews need no fresh MFA here: the issuer's tokens would age past max_age in a
        // long run. The step-up check itself (claims compared) stays on every call.
        JITCTL_SERVER_REVIEW_STEP_UP: 'none',
        // One requester hammers the API on purpose: the abuse limits would measure themselves.
        JITCTL_SERVER_RATE_LIMITS: 'off',
        JITCTL_SERVER_AUDITORS: 'auditors',
      };
      let policy = opts.policy ?? BENCH_POLICY;
      let started: { child: ChildProcess; url: string } | undefined;
      // An older build (`--bin`, to compare) may not know a variable or a policy key the bench
      // sets for today's broker (the rate-limit switch, max_pending): it is left out for that
      // build, which had no such limit, and the broker started again.
      for (let attempt = 0; !started; attempt++) {
        writeFileSync(join(root, 'policy.yaml'), policy);
        try {
          started = await launch(
            { nodeArgs: opts.nodeArgs ?? [], bin: opts.bin ?? BIN, dbUrl, root, issuer },
            env,
          );
        } catch (err) {
          const said = (err as Error).message;
          const unknownVar = /unknown environment variable (JITCTL_\w+)/.exec(said)?.[1];
          if (attempt < 4 && unknownVar && unknownVar in env) delete env[unknownVar];
          else if (attempt < 4 && /max_pending/.test(said) && policy.includes('max_pending:'))
            policy = policy.replace(/^\s*max_pending:.*\n/m, '');
          else throw err;
        }
      }
      const { child, url } = started;
      const [requester, approver, auditor] = await Promise.all([
        issuer.token({ sub: 'bench-dev', name: 'Bench Developer', groups: ['developers'] }),
        issuer.token({ sub: 'bench-lead', name: 'Bench Lead', groups: ['leads'] }),
        issuer.token({ sub: 'bench-auditor', name: 'Bench Auditor', groups: ['auditors'] }),
      ]);
      return {
        url,
        db,
        dbUrl,
        requester,
        approver,
        auditor,
        requesterToken: (sub: string) =>
          issuer.token({ sub, name: `Bench ${sub}`, groups: ['developers'] }),
        child,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            await exited;
          }
          rmSync(root, { recursive: true, force: true });
        },
      };
    },
    async close() {
      await issuer.close();
      pg?.stop();
      for (const r of roots) rmSync(r, { recursive: true, force: true });
    },
  };
}
