/**
 * How fast a long poll wakes: the time from the approving review's HTTP response to the waiting
 * `GET /v1/requests/:id?wait=60s` response, against a broker on 127.0.0.1 with SQLite on disk,
 * measured by the client over `--runs` requests (default 50). The target is 100 ms.
 *
 *   npx tsx bench/long-poll-wake.ts [--runs 50] [--json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { loadServerConfig } from '../src/server/config.js';
import { startBroker } from '../src/server/start.js';
import { startTestIssuer } from '../test/support/test-issuer.js';

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

const i = process.argv.indexOf('--runs');
const runs = i === -1 ? 50 : Number(process.argv[i + 1]);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive whole number');

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
  },
  env: {},
  cwd: dir,
});
const broker = await startBroker(config, {
  logStream: new Writable({ write: (_c, _e, done) => done() }),
});
const dev = await issuer.token({ sub: 'dev', groups: ['developers'] });
const lead = await issuer.token({ sub: 'lead', groups: ['leads'] });
const call = async (method: 'GET' | 'POST', path: string, token: string, body?: unknown) => {
  const res = await request(`${broker.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
  return { at: performance.now(), body: JSON.parse(text) as { id: string; state: string } };
};

const samples: number[] = [];
for (let run = 0; run < runs; run++) {
  const { body: req } = await call('POST', '/v1/requests', dev, { role: 'bench' });
  const waiting = call('GET', `/v1/requests/${req.id}?wait=60s`, dev);
  await sleep(20); // let the poll reach the broker and start waiting
  const approved = await call('POST', `/v1/requests/${req.id}/reviews`, lead, {
    decision: 'approve',
  });
  const woke = await waiting;
  if (woke.body.state !== 'approved') throw new Error(`poll answered ${woke.body.state}`);
  samples.push(Math.max(0, woke.at - approved.at));
}
await broker.close();
await issuer.close();
rmSync(dir, { recursive: true, force: true });

samples.sort((a, b) => a - b);
const pct = (p: number) =>
  samples[Math.min(samples.length - 1, Math.ceil((p / 100) * samples.length) - 1)]!;
const figures = {
  benchmark: 'long-poll-wake',
  runs,
  ms: {
    p50: +pct(50).toFixed(2),
    p90: +pct(90).toFixed(2),
    p99: +pct(99).toFixed(2),
    max: +samples.at(-1)!.toFixed(2),
  },
};
if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
else
  console.log(
    `long poll wake-up after the approving review's response, ${runs} runs: ` +
      `p50 ${figures.ms.p50} ms, p90 ${figures.ms.p90} ms, p99 ${figures.ms.p99} ms, max ${figures.ms.max} ms`,
  );
