import { execFile, execFileSync, spawnSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * A throwaway PostgreSQL cluster for the tests of the PostgreSQL dialect: initdb into a temporary
 * directory, listen on 127.0.0.1 at a free port, trust auth. PostgreSQL refuses to run as root,
 * so under root the cluster runs as the `postgres` OS user (Debian's package creates it).
 * JITCTL_TEST_PG_URL skips all this and uses an existing server.
 */
export interface TestPostgres {
  url: string;
  stop(): void;
}

function findBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  if (process.env.JITCTL_TEST_PG_URL) return { url: process.env.JITCTL_TEST_PG_URL, stop() {} };
  const cluster = await startPostgresCluster();
  return { url: cluster.url, stop: () => cluster.destroy() };
}

/**
 * A cluster of the test's own, always (never JITCTL_TEST_PG_URL's server): for tests that stop,
 * restart or kill PostgreSQL under a running broker without disturbing every other test.
 */
export interface PostgresCluster {
  url: string;
  /** `pg_ctl start`; resolves once it accepts connections. */
  start(): Promise<void>;
  /** `pg_ctl stop -m fast`: connections are terminated, as in a failover or maintenance. */
  stop(): Promise<void>;
  /** `pg_ctl restart -m fast`. */
  restart(): Promise<void>;
  /** SIGKILL to the postmaster (a crash); resolves once its backends have exited. Then start(). */
  killPostmaster(): Promise<void>;
  /** Stops it if running and removes its files. */
  destroy(): void;
}

export async function startPostgresCluster(
  opts: { running?: boolean } = {},
): Promise<PostgresCluster> {
  const bin = findBin();
  if (!bin) {
    throw new Error(
      'PostgreSQL is needed for the tests of the PostgreSQL dialect: install it (apt-get install postgresql) ' +
        'or set JITCTL_TEST_PG_URL=postgres://user:pass@host:port/db',
    );
  }
  const root = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-pg-'));
  const run = (cmd: string, args: string[]) => {
    const full = root
      ? (['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] as const)
      : ([join(bin, cmd), args] as const);
    const res = spawnSync(full[0], full[1] as string[], { encoding: 'utf8', cwd: dir });
    if (res.status !== 0) throw new Error(`${cmd} failed: ${res.stderr || res.stdout}`);
  };
  if (root)
    chownSync(
      dir,
      Number(execFileSync('id', ['-u', 'postgres']).toString()),
      Number(execFileSync('id', ['-g', 'postgres']).toString()),
    );
  const port = await freePort();
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8']);
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  // Asynchronous, so a broker running in the test's own process keeps serving meanwhile.
  const pgCtl = async (...args: string[]) => {
    const argv = [join(bin, 'pg_ctl'), '-D', data, '-l', join(dir, 'pg.log'), '-w', '-t', '30'];
    const [cmd, ...rest] = root ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
    await new Promise<void>((resolve, reject) => {
      execFile(cmd!, [...rest, ...args], { cwd: dir }, (err, _out, stderr) => {
        if (!err) return resolve();
        let log = '';
        try {
          log = readFileSync(join(dir, 'pg.log'), 'utf8').split('\n').slice(-15).join('\n');
        } catch {}
        reject(new Error(`pg_ctl ${args[0]} failed: ${stderr || err.message}\n${log}`));
      });
    });
  };
  let running = false;
  const cluster: PostgresCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await pgCtl('start', '-o', options);
      running = true;
    },
    async stop() {
      await pgCtl('stop', '-m', 'fast');
      running = false;
    },
    async restart() {
      await pgCtl('restart', '-m', 'fast', '-o', options);
      running = true;
    },
    async killPostmaster() {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(pid, 'SIGKILL');
      running = false;
      // Its backends notice the postmaster is gone and exit; a new postmaster refuses to start
      // while they still hold the shared memory, so wait for them as an init system would.
      const deadline = Date.now() + 30_000;
      while (clusterProcesses(data).length > 0) {
        if (Date.now() > deadline)
          throw new Error('PostgreSQL backends did not exit after the postmaster was killed');
        await new Promise((r) => setTimeout(r, 20));
      }
      // Where nothing reaps orphans (a container's init), the dead postmaster lingers as a zombie
      // and PostgreSQL would take its lock files for a running server. Everything has exited.
      for (const lock of ['data/postmaster.pid', `.s.PGSQL.${port}.lock`, `.s.PGSQL.${port}`])
        rmSync(join(dir, lock), { force: true });
    },
    destroy() {
      try {
        if (running) run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  if (opts.running !== false) await cluster.start();
  return cluster;
}

/** Every process of the cluster in `data`: PostgreSQL's processes all run in their data directory. */
function clusterProcesses(data: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === data) pids.push(Number(entry));
    } catch {
      // gone already, or not ours to look at
    }
  }
  return pids;
}
