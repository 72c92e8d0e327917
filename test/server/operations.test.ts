import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { actor, file, POLICY, people } from './helpers.js';

/** What operators rely on: health, readiness, metrics, logs without secrets, database outages. */

describe('health, metrics and logs', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY });
  });
  afterAll(async () => b?.close());

  it('answers /healthz and /readyz without a token', async () => {
    expect((await http(b.url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await http(b.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
  });

  it('exposes Prometheus metrics by route template, never raw URLs', async () => {
    const alice = actor(b, people.alice);
    const req = await file(alice, { role: 'prod-deploy', reason: 'metrics' });
    await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' });
    await alice.post(`/v1/requests/${req.id}/credential`);
    await alice.get(`/v1/requests/${req.id}`);
    await alice.get('/v1/no/such/route');
    const m = await http(b.url, 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = m.text;
    expect(text).toContain(
      'jitctl_http_requests_total{method="POST",route="/v1/requests",status="201"} 1',
    );
    expect(text).toContain(
      'jitctl_http_requests_total{method="GET",route="/v1/requests/:id",status="200"} 1',
    );
    expect(text).toContain('route="unmatched",status="404"');
    expect(text).toContain('jitctl_requests_created_total{role="prod-deploy"} 1');
    expect(text).toContain('jitctl_request_transitions_total{to="approved"} 1');
    expect(text).toContain('jitctl_reviews_total{decision="approve"} 1');
    expect(text).toContain('jitctl_credentials_minted_total{role="prod-deploy"} 1');
    expect(text).toContain('jitctl_audit_events_appended_total{type="credential.minted"} 1');
    expect(text).toMatch(
      /jitctl_http_request_duration_seconds_bucket\{method="POST",route="\/v1\/requests",le="\+Inf"\} 1/,
    );
    expect(text).not.toContain(req.id);
  });

  it('logs JSON lines with request ids and never a token', async () => {
    const token = await b.issuer.token(people.alice);
    const r = await http(b.url, 'GET', '/v1/me', { token });
    expect(r.headers['x-request-id']).toMatch(/^r_/);
    const bad = await http(b.url, 'GET', '/v1/me', { token: `${token}x` });
    expect(bad.status).toBe(401);
    const lines = b
      .logs()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => l.reqId === r.headers['x-request-id']);
    expect(line).toMatchObject({ method: 'GET', route: '/v1/me', status: 200, msg: 'request' });
    expect(b.logs()).not.toContain(token.split('.')[2]);
    expect(b.logs()).not.toContain(token.split('.')[1]);
  });
});

describe('database outages', () => {
  let b: TestBroker;
  let dbName: string;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY, dialect: 'postgres' });
    dbName = new URL(b.dbUrl).pathname.slice(1);
  });
  afterAll(async () => {
    await rawSql(
      b.dbUrl.replace(`/${dbName}`, '/postgres'),
      `alter database ${dbName} allow_connections true`,
    );
    await b?.close();
  });

  it('answers 503 (never 500) while PostgreSQL refuses connections, and recovers', async () => {
    const alice = actor(b, people.alice);
    const req = await file(alice, { role: 'two-person' });
    const admin = b.dbUrl.replace(`/${dbName}`, '/postgres');
    await rawSql(
      admin,
      `alter database ${dbName} allow_connections false;
       select pg_terminate_backend(pid) from pg_stat_activity where datname = '${dbName}' and pid <> pg_backend_pid();`,
    );
    const ready = await http(b.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    for (const call of [
      () => alice.post('/v1/requests', { role: 'two-person' }),
      () => alice.get(`/v1/requests/${req.id}`),
      () => actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, { decision: 'approve' }),
    ]) {
      const r = await call();
      expect(r.status, r.text).toBe(503);
      expect(r.body).toMatchObject({ error: { code: 'unavailable' } });
    }
    expect((await http(b.url, 'GET', '/healthz')).status).toBe(200);

    await rawSql(admin, `alter database ${dbName} allow_connections true`);
    const again = await http(b.url, 'GET', '/readyz');
    expect(again.status).toBe(200);
    const r = await alice.get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(r.body.state).toBe('pending');
    expect(r.body.reviews).toEqual([]);
  });
});

describe('webhooks', () => {
  it('tells the policy notify targets about each change after it commits, never with a token', async () => {
    const received: Record<string, unknown>[] = [];
    const bodies: string[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        bodies.push(body);
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as AddressInfo).port;
    const b = await startTestBroker({
      policy: `${POLICY}\nnotify:\n  - webhook: http://127.0.0.1:${port}/hook\n`,
      settings: {
        webhook_secrets: JSON.stringify({
          default: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
        }),
      },
      start: { notify: { pollIntervalMs: 50 } },
    });
    try {
      const alice = actor(b, people.alice);
      const req = await file(alice, { role: 'prod-deploy', reason: 'INC-7' });
      await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
        comment: 'ship it',
      });
      const cred = await alice.post<{ token: string }>(`/v1/requests/${req.id}/credential`);
      await alice.post(`/v1/requests/${req.id}/revoke`);
      const deadline = Date.now() + 20_000;
      while (received.length < 4 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(received.map((e) => e.type)).toEqual([
        'request.created',
        'review.recorded',
        'request.approved',
        'request.revoked',
      ]);
      expect(received[0]).toMatchObject({
        request_id: req.id,
        role: 'prod-deploy',
        requester: 'Alice',
        reason: 'INC-7',
        reviewer: null,
      });
      expect(received[1]).toMatchObject({
        reviewer: 'Lee',
        decision: 'approve',
        comment: 'ship it',
      });
      expect(received[2]).toMatchObject({ reviewer: 'Lee', comment: 'ship it' });
      expect(received[3]).toMatchObject({ reviewer: 'Alice' });
      expect(bodies.join('\n')).not.toContain(cred.body.token);
    } finally {
      await b.close();
      receiver.close();
    }
  });
});
