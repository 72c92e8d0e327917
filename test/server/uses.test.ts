import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { actor, file, people } from './helpers.js';

/**
 * `POST /v1/requests/:id/uses` (issue 16, "who ran what"): the requester's CLI reports commands
 * run under a grant; the broker audits them as `command.started` / `command.ended`, keeping the
 * command only as the role's `audit_commands` allows and redacting again whatever was sent.
 */

const POLICY = `
roles:
  names:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    credential: { audience: https://a.example.com }
  everything:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    audit_commands: full
    credential: { audience: https://b.example.com }
  nothing:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    audit_commands: none
    credential: { audience: https://c.example.com }
`;

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker({ policy: POLICY });
});
afterAll(async () => b?.close());

const SECRET_ARGS = [
  '/usr/local/bin/deploy',
  '--token',
  'hunter2-not-a-token-shape',
  'PGPASSWORD=s3cret-value',
  'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl',
  'https://admin:pa55word@db.internal/app',
  'Zx9fK2mQp8Lr4Tn7Wv1Yb3Hc6Jd0',
  'prod',
];

function report(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    use_id: `use_${Math.random().toString(36).slice(2, 12)}`,
    event: 'start',
    kind: 'exec',
    host: 'laptop-7',
    os_user: 'alice',
    cwd: '/home/alice/app',
    command: SECRET_ARGS,
    started_at: new Date(b.clock.now()).toISOString(),
    ...over,
  };
}

async function grant(role: string): Promise<AccessRequest> {
  return file(actor(b, people.alice), { role });
}

async function events(id: string, type: string) {
  const rows = (await rawSql(
    b.dbUrl,
    `select actor, data from audit_events where request_id = '${id}' and type = '${type}' order by seq`,
  )) as { actor: string; data: string }[];
  return rows.map((r) => ({ actor: JSON.parse(r.actor), data: JSON.parse(r.data) }));
}

describe('reporting a command run under a grant', () => {
  it('audits its start and end with the program only, by default', async () => {
    const req = await grant('names');
    const alice = actor(b, people.alice);
    const start = report({ jti: 'jti-1' });
    const r1 = await alice.post(`/v1/requests/${req.id}/uses`, start);
    expect(r1.status, r1.text).toBe(201);
    const end = {
      ...start,
      event: 'end',
      ended_at: new Date(Date.parse(start.started_at as string) + 1500).toISOString(),
      exit_code: 3,
      signal: null,
    };
    expect((await alice.post(`/v1/requests/${req.id}/uses`, end)).status).toBe(201);
    const [started] = await events(req.id, 'command.started');
    expect(started).toEqual({
      actor: { iss: b.issuer.issuer, sub: 'alice-sub', name: 'Alice' },
      data: {
        use_id: start.use_id,
        kind: 'exec',
        role: 'names',
        jti: 'jti-1',
        host: 'laptop-7',
        os_user: 'alice',
        cwd: '/home/alice/app',
        command: ['deploy'],
        started_at: start.started_at,
        late: false,
        grant_state: 'approved',
      },
    });
    const [ended] = await events(req.id, 'command.ended');
    expect(ended!.data).toMatchObject({
      command: ['deploy'],
      exit_code: 3,
      signal: null,
      duration_ms: 1500,
    });
    const all = JSON.stringify(await rawSql(b.dbUrl, 'select data from audit_events'));
    for (const secret of ['hunter2', 's3cret', 'pa55word', 'eyJhbGciOiJFUzI1NiJ9', 'Zx9fK2mQ'])
      expect(all).not.toContain(secret);
  });

  it('keeps every argument, secrets redacted, for audit_commands: full; nothing for none', async () => {
    const full = await grant('everything');
    const alice = actor(b, people.alice);
    expect((await alice.post(`/v1/requests/${full.id}/uses`, report())).status).toBe(201);
    const [e] = await events(full.id, 'command.started');
    expect(e!.data.command).toEqual([
      '/usr/local/bin/deploy',
      '--token',
      '[REDACTED]',
      'PGPASSWORD=[REDACTED]',
      '[REDACTED]',
      'https://admin:[REDACTED]@db.internal/app',
      '[REDACTED]',
      'prod',
    ]);
    const none = await grant('nothing');
    expect((await alice.post(`/v1/requests/${none.id}/uses`, report())).status).toBe(201);
    const [n] = await events(none.id, 'command.started');
    expect(n!.data.command).toBeUndefined();
  });

  it('records each use and event once, and marks a late report', async () => {
    const req = await grant('names');
    const alice = actor(b, people.alice);
    const late = report({
      started_at: new Date(b.clock.now() - 3_600_000).toISOString(),
      queued_at: new Date(b.clock.now() - 3_500_000).toISOString(),
    });
    expect((await alice.post(`/v1/requests/${req.id}/uses`, late)).status).toBe(201);
    const again = await alice.post(`/v1/requests/${req.id}/uses`, late);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ recorded: false });
    const started = await events(req.id, 'command.started');
    expect(started).toHaveLength(1);
    expect(started[0]!.data).toMatchObject({ late: true, queued_at: late.queued_at });
  });

  it('is the requester’s to report, about a request that exists, in the documented shape', async () => {
    const req = await grant('names');
    const bob = actor(b, people.bob);
    expect((await bob.post(`/v1/requests/${req.id}/uses`, report())).status).toBe(403);
    const alice = actor(b, people.alice);
    expect((await alice.post('/v1/requests/req_doesNotExist1/uses', report())).status).toBe(404);
    for (const bad of [
      report({ event: 'middle' }),
      report({ use_id: 'x' }),
      report({ started_at: 'yesterday' }),
      report({ event: 'end' }),
      report({ token: 'eyJ' }),
      report({ command: 'deploy' }),
    ]) {
      const r = await alice.post(`/v1/requests/${req.id}/uses`, bad);
      expect(r.status, JSON.stringify(bad)).toBe(400);
    }
  });
});
