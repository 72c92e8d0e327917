/**
 * Requests created per second and their latency: autocannon against a broker on 127.0.0.1 with
 * SQLite on disk, 32 connections for 10 s, every call a `POST /v1/requests` with a real ID token
 * (verified once, then served from the broker's verification cache, as a busy CLI fleet would be).
 *
 *   npx tsx bench/create-requests.ts [--connections 32] [--duration 10] [--json]
 *
 * The broker runs in a child process (this script with --serve), so the load generator does not
 * share its event loop. Each created request is a full write: the row, its audit event in the same
 * transaction (BEGIN IMMEDIATE, WAL, synchronous=NORMAL) and the chain head.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const POLICY = `
roles:
  bench:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    credential:
      audience: https://bench.example.com
`;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} needs a positive whole number`);
  return n;
}

async function serve(): Promise<void> {
  const [{ startTestIssuer }, { loadServerConfig }, { startBroker }] = await Promise.all([
    import('../test/support/test-issuer.js'),
    import('../src/server/config.js'),
    import('../src/server/start.js'),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-bench-'));
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  const issuer = await startTestIssuer();
  const config = await loadServerConfig({
    flags: {
      listen: '127.0.0.1:0',
      db: `sqlite:${join(dir, 'bench.db')}`,
      policy: join(dir, 'policy.yaml'),
      oidc_issuer: issuer.issuer,
      oidc_client_id: issuer.clientId,
      log_level: 'info',
    },
    env: {},
    cwd: dir,
  });
  // Logs are formatted as in production, then dropped: the cost stays in, the noise does not.
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const broker = await startBroker(config, { logStream: sink });
  const token = await issuer.token({ sub: 'bench-user', name: 'Bench', groups: ['developers'] });
  process.stdout.write(`${JSON.stringify({ url: broker.url, token })}\n`);
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await broker.close();
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

async function main(): Promise<void> {
  const connections = arg('connections', 32);
  const duration = arg('duration', 10);
  const json = process.argv.includes('--json');
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, self, '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(JSON.parse(line) as { url: string; token: string });
    });
    child.once('exit', (code) => reject(new Error(`the broker exited (${code})`)));
  });
  const { default: autocannon } = await import('autocannon');
  const result = await autocannon({
    url: `${url}/v1/requests`,
    method: 'POST',
    connections,
    duration,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'bench', reason: 'benchmark' }),
  });
  child.stdin!.end();
  await new Promise((r) => child.once('exit', r));

  const figures = {
    benchmark: 'create-requests',
    connections,
    duration_s: duration,
    requests_per_s: Math.round(result.requests.average),
    created: result['2xx'],
    latency_ms: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    non_2xx: result.non2xx,
    errors: result.errors,
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      load_avg_1m: Number(loadavg()[0]!.toFixed(2)),
    },
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    return;
  }
  console.log(`POST /v1/requests, SQLite on disk, ${connections} connections, ${duration} s`);
  console.log(
    `  created       ${figures.created} (${figures.non_2xx} non-2xx, ${figures.errors} errors)`,
  );
  console.log(`  requests/s    ${figures.requests_per_s}`);
  console.log(
    `  latency ms    p50 ${figures.latency_ms.p50}  p90 ${figures.latency_ms.p90}  p99 ${figures.latency_ms.p99}  max ${figures.latency_ms.max}`,
  );
  console.log(
    `  machine       ${figures.machine.cpus} × ${figures.machine.cpu}, load average ${figures.machine.load_avg_1m}`,
  );
}

if (process.argv.includes('--serve')) await serve();
else await main();
