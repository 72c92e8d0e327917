import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AccessRequest,
  AuditPage,
  ConfigResponse,
  RequestPage,
  RolesResponse,
} from '../../src/api/schemas.js';
import { VERSION } from '../../src/api/version.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Actor, actor, file, POLICY, people } from './helpers.js';

/**
 * API v1 as DESIGN.md and src/api/schemas.ts define it, and every kind of bad input: each gets a
 * 4xx with the API's error shape and a message naming what was wrong, never a 5xx, and never a
 * change of state.
 */

let b: TestBroker;
let alice: Actor;
beforeAll(async () => {
  b = await startTestBroker({ policy: POLICY, settings: { admins: 'admins' } });
  alice = actor(b, people.alice);
});
afterAll(async () => b?.close());

async function counts(): Promise<string> {
  const rows = (await rawSql(
    b.dbUrl,
    'select (select count(*) from requests) as r, (select count(*) from reviews) as v, (select count(*) from audit_events) as a',
  )) as object[];
  return JSON.stringify(rows[0]);
}

describe('filing a request: bad input', () => {
  const cases: [string, unknown, number, string, RegExp][] = [
    [
      '15x',
      { role: 'prod-deploy', duration: '15x', reason: 'r' },
      400,
      'invalid_duration',
      /"15x" is not a duration/,
    ],
    ['0m', { role: 'prod-deploy', duration: '0m', reason: 'r' }, 400, 'invalid_duration', /zero/],
    [
      '-5m',
      { role: 'prod-deploy', duration: '-5m', reason: 'r' },
      400,
      'invalid_duration',
      /negative/,
    ],
    [
      '99999h',
      { role: 'prod-deploy', duration: '99999h', reason: 'r' },
      400,
      'duration_too_long',
      /maximum of 1h/,
    ],
    [
      'over max',
      { role: 'prod-deploy', duration: '2h', reason: 'r' },
      400,
      'duration_too_long',
      /2h is longer than the maximum of 1h for role prod-deploy/,
    ],
    [
      'empty duration',
      { role: 'prod-deploy', duration: '', reason: 'r' },
      400,
      'invalid_duration',
      /empty/,
    ],
    ['unknown role', { role: 'prod-deplyo' }, 400, 'unknown_role', /no role "prod-deplyo"/],
    ['missing reason', { role: 'prod-deploy' }, 400, 'reason_required', /requires a reason/],
    [
      'blank reason',
      { role: 'prod-deploy', reason: '   ' },
      400,
      'reason_required',
      /requires a reason/,
    ],
    [
      'number duration',
      { role: 'prod-deploy', duration: 15, reason: 'r' },
      400,
      'bad_request',
      /`duration` must be a string/,
    ],
    ['number role', { role: 5 }, 400, 'bad_request', /`role` must be a string/],
    [
      'array reason',
      { role: 'prod-deploy', reason: ['x'] },
      400,
      'bad_request',
      /`reason` must be a string/,
    ],
    [
      'extra field',
      { role: 'prod-deploy', reason: 'r', approve: true },
      400,
      'bad_request',
      /unexpected field `approve`/,
    ],
    ['missing role', { reason: 'r' }, 400, 'bad_request', /`role` is required/],
    ['empty role', { role: '' }, 400, 'bad_request', /`role` must not be empty/],
    [
      'long reason',
      { role: 'prod-deploy', reason: 'x'.repeat(1001) },
      400,
      'bad_request',
      /longer than 1000/,
    ],
    ['array body', [{ role: 'prod-deploy' }], 400, 'bad_request', /JSON object/],
    ['string body', 'prod-deploy', 400, 'bad_request', /JSON object/],
    ['null body', null, 400, 'bad_request', /JSON object/],
  ];

  it.each(cases)('%s → %s %s', async (_name, body, status, code, message) => {
    const before = await counts();
    const r = await alice.post('/v1/requests', body);
    expect(r.status, r.text).toBe(status);
    expect(r.body).toMatchObject({ error: { code, message: expect.stringMatching(message) } });
    expect(await counts()).toBe(before);
  });

  it('an unknown role lists the roles the caller may request', async () => {
    const r = await alice.post('/v1/requests', { role: 'nope' });
    expect(r.body).toMatchObject({
      error: { hint: 'roles you may request: prod-deploy, two-person, self-service' },
    });
    const m = await actor(b, people.mallory).post('/v1/requests', { role: 'nope' });
    expect(m.body).toMatchObject({
      error: { hint: expect.stringContaining('may not request any role') },
    });
  });

  it('a role the caller may not request is 403', async () => {
    const before = await counts();
    const r = await actor(b, people.mallory).post('/v1/requests', {
      role: 'prod-deploy',
      reason: 'x',
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({
      error: { code: 'forbidden', hint: expect.stringContaining('group:developers') },
    });
    expect(await counts()).toBe(before);
  });

  it('refuses bodies over the limit (1 MB) with 413', async () => {
    const before = await counts();
    const r = await alice.post('/v1/requests', {
      role: 'prod-deploy',
      reason: 'x'.repeat(1024 * 1024),
    });
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await counts()).toBe(before);
  });

  it('refuses non-JSON with 400 and other media types with 415', async () => {
    const token = await b.issuer.token(people.alice);
    const broken = await http(b.url, 'POST', '/v1/requests', {
      token,
      raw: '{"role": "prod-deploy",',
      headers: { 'content-type': 'application/json' },
    });
    expect(broken.status).toBe(400);
    expect(broken.body).toMatchObject({
      error: { code: 'bad_request', message: 'the body is not valid JSON' },
    });
    const text = await http(b.url, 'POST', '/v1/requests', {
      token,
      raw: 'role=prod-deploy',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    expect(text.body).toMatchObject({ error: { code: 'unsupported_media_type' } });
    const form = await http(b.url, 'POST', '/v1/requests', {
      token,
      raw: 'role=prod-deploy',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    const proto = await http(b.url, 'POST', '/v1/requests', {
      token,
      raw: '{"role":"self-service","__proto__":{"admin":true}}',
      headers: { 'content-type': 'application/json' },
    });
    expect(proto.status).toBe(400);
    const empty = await http(b.url, 'POST', '/v1/requests', {
      token,
      raw: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.status).toBe(400);
  });

  it('stores reasons with ANSI escapes and bidi controls as given and returns them JSON-escaped', async () => {
    const reason = '\u001b[31mred\u001b[0m \u202eevil\u202c and \u2066iso\u2069 \u0007bell';
    const r = await alice.post<AccessRequest>('/v1/requests', {
      role: 'prod-deploy',
      reason,
      ticket: '\u001b]8;;http://x\u0007link',
    });
    expect(r.status).toBe(201);
    expect(r.body.reason).toBe(reason);
    for (const raw of ['\u001b', '\u202e', '\u202c', '\u2066', '\u0007']) {
      expect(r.text.includes(raw)).toBe(false);
    }
    expect(r.text).toContain('\\u001b[31m');
    expect(r.text).toContain('\\u202e');
    const again = await alice.get<AccessRequest>(`/v1/requests/${r.body.id}`);
    expect(again.body.reason).toBe(reason);
    expect(again.text.includes('\u202e')).toBe(false);
  });
});

describe('Idempotency-Key', () => {
  it('returns the same request on retry and refuses the key for a different body', async () => {
    const headers = { 'idempotency-key': 'retry-1234' };
    const first = await alice.post<AccessRequest>('/v1/requests', { role: 'two-person' }, headers);
    expect(first.status).toBe(201);
    const before = await counts();
    const retry = await alice.post<AccessRequest>('/v1/requests', { role: 'two-person' }, headers);
    expect(retry.status).toBe(201);
    expect(retry.body.id).toBe(first.body.id);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await counts()).toBe(before);
    const changed = await alice.post(
      '/v1/requests',
      { role: 'two-person', duration: '1h' },
      headers,
    );
    expect(changed.status).toBe(422);
    expect(changed.body).toMatchObject({ error: { code: 'idempotency_key_reused' } });
    // Keys belong to their requester: bob's request with the same key is his own.
    const bob = await actor(b, people.bob).post<AccessRequest>(
      '/v1/requests',
      { role: 'two-person' },
      headers,
    );
    expect(bob.status).toBe(201);
    expect(bob.body.id).not.toBe(first.body.id);
  });

  it('refuses malformed keys', async () => {
    for (const key of ['x'.repeat(201), 'has space', 'ümlaut']) {
      const r = await alice.post(
        '/v1/requests',
        { role: 'two-person' },
        { 'idempotency-key': key },
      );
      expect(r.status, key).toBe(400);
    }
  });

  it('files one request when many retries with one key race', async () => {
    const headers = { 'idempotency-key': 'race-5678' };
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        alice.post<AccessRequest>('/v1/requests', { role: 'two-person' }, headers),
      ),
    );
    expect(new Set(results.map((r) => r.status))).toEqual(new Set([201]));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
  });
});

describe('reviews: bad input', () => {
  it('refuses bad decisions, extra fields and a changed fingerprint, changing nothing', async () => {
    const req = await file(alice, { role: 'prod-deploy', reason: 'x' });
    const lee = actor(b, people.lee);
    const before = await counts();
    const bad: [unknown, number, string][] = [
      [{ decision: 'maybe' }, 400, '`decision` must be "approve" or "deny"'],
      [{ decision: 'approve', approvals: 2 }, 400, 'unexpected field `approvals`'],
      [{}, 400, '`decision` is required'],
      [{ decision: 'approve', comment: 7 }, 400, '`comment` must be a string'],
      [{ decision: 'approve', fingerprint: '0000-0000-0000-0000' }, 409, 'no longer matches'],
    ];
    for (const [body, status, message] of bad) {
      const r = await lee.post(`/v1/requests/${req.id}/reviews`, body);
      expect(r.status, r.text).toBe(status);
      expect(r.body).toMatchObject({ error: { message: expect.stringContaining(message) } });
    }
    expect(await counts()).toBe(before);
    const ok = await lee.post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
      fingerprint: req.fingerprint,
    });
    expect(ok.status).toBe(200);
  });

  it('answers 404 for unknown and malformed ids, and for unknown endpoints', async () => {
    for (const id of ['req_111111111111', 'nope', 'req_0OIl00000000', '../../etc/passwd']) {
      const r = await actor(b, people.lee).post(`/v1/requests/${encodeURIComponent(id)}/reviews`, {
        decision: 'approve',
      });
      expect(r.status, id).toBe(404);
      expect(r.body).toMatchObject({ error: { code: 'not_found' } });
    }
    const route = await alice.get('/v1/nothing-here');
    expect(route.status).toBe(404);
    expect(route.body).toMatchObject({ error: { code: 'not_found' } });
    const method = await http(b.url, 'DELETE', '/v1/requests');
    expect(method.status).toBe(404);
  });

  it('answers URLs the router refuses in the API error shape', async () => {
    const badEscape = await alice.get('/v1/requests/%ZZ');
    expect(badEscape.status).toBe(400);
    expect(badEscape.body).toEqual({
      error: {
        code: 'bad_request',
        message: expect.stringMatching(/%-escape/),
        hint: expect.any(String),
      },
    });
    expect(badEscape.headers['x-request-id']).toMatch(/^r_/);
    const long = await alice.get(`/v1/requests/req_${'x'.repeat(300)}`);
    expect(long.status).toBe(414);
    expect(long.body).toMatchObject({
      error: { code: 'bad_request', message: expect.stringMatching(/longer than 200/) },
    });
    expect(long.text).not.toContain('x'.repeat(300));
  });

  it('actions take no fields', async () => {
    const req = await file(alice, { role: 'two-person' });
    const r = await alice.post(`/v1/requests/${req.id}/cancel`, { force: true });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { message: 'unexpected field `force`' } });
    const state = await alice.get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(state.body.state).toBe('pending');
  });
});

describe('reading requests', () => {
  it('shows a request to its requester, its approvers, admins and auditors only', async () => {
    const req = await file(alice, { role: 'prod-deploy', reason: 'x' });
    for (const p of [people.alice, people.lee, people.root, people.ada]) {
      const r = await actor(b, p).get<AccessRequest>(`/v1/requests/${req.id}`);
      expect(r.status, p.sub).toBe(200);
      expect(r.body.id).toBe(req.id);
      expect(r.headers.etag).toBe('"pending.0"');
      expect(r.headers['cache-control']).toBe('no-store');
    }
    for (const p of [people.bob, people.mallory]) {
      const r = await actor(b, p).get(`/v1/requests/${req.id}`);
      expect(r.status, p.sub).toBe(403);
    }
  });

  it('lists pages newest first with filters and an opaque cursor', async () => {
    const carol = actor(b, { sub: 'lister', groups: ['developers'] });
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.push((await file(carol, { role: 'two-person' })).id);
    const cancelled = await carol.post<AccessRequest>(`/v1/requests/${mine[0]}/cancel`);
    expect(cancelled.body.state).toBe('cancelled');

    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 5; page++) {
      const q: string = `/v1/requests?mine=true&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const r: { status: number; body: RequestPage } = await carol.get<RequestPage>(q);
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((i) => i.id));
      cursor = r.body.next_cursor;
      if (!cursor) break;
    }
    expect(seen).toEqual([...mine].reverse());
    const pending = await carol.get<RequestPage>('/v1/requests?mine=true&state=pending');
    expect(pending.body.items.map((i) => i.id)).toEqual(mine.slice(1).reverse());
    const none = await carol.get<RequestPage>('/v1/requests?mine=true&state=denied');
    expect(none.body).toEqual({ items: [], next_cursor: null });

    // Lee reviews two-person: his reviewable list has carol's pending requests; alice's own list does not.
    const lee = await actor(b, people.lee).get<RequestPage>(
      '/v1/requests?reviewable=true&state=pending&limit=200',
    );
    expect(lee.body.items.map((i) => i.id)).toEqual(expect.arrayContaining(mine.slice(1)));
    const aliceList = await alice.get<RequestPage>('/v1/requests?limit=200');
    expect(aliceList.body.items.some((i) => mine.includes(i.id))).toBe(false);
    expect(aliceList.body.items.every((i) => i.requester.sub === 'alice-sub')).toBe(true);
    // Auditors see everything.
    const ada = await actor(b, people.ada).get<RequestPage>('/v1/requests?limit=200');
    expect(ada.body.items.map((i) => i.id)).toEqual(expect.arrayContaining(mine));
    // The requester is never offered their own request to review.
    const dual = actor(b, { sub: 'dual-lister', groups: ['developers', 'leads'] });
    const own = await file(dual, { role: 'two-person' });
    const reviewable = await dual.get<RequestPage>('/v1/requests?reviewable=true&limit=200');
    expect(reviewable.body.items.map((i) => i.id)).not.toContain(own.id);
  });

  it('refuses bad list parameters', async () => {
    const bad = [
      ['state=open', /not a request state/],
      ['limit=0', /limit/],
      ['limit=201', /limit/],
      ['limit=ten', /limit/],
      ['mine=yes', /true or false/],
      ['mine=true&reviewable=true', /cannot both/],
      ['cursor=garbage', /cursor/],
      ['sort=asc', /unknown query parameter `sort`/],
      ['state=pending&state=approved', /once/],
    ] as const;
    for (const [query, message] of bad) {
      const r = await alice.get(`/v1/requests?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body).toMatchObject({
        error: { code: 'bad_request', message: expect.stringMatching(message) },
      });
    }
  });
});

describe('configuration, identity and roles', () => {
  it('GET /v1/config tells an anonymous CLI how to sign in', async () => {
    const r = await http<ConfigResponse>(b.url, 'GET', '/v1/config');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      issuer: b.issuer.issuer,
      client_id: 'jitctl-cli',
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      device_flow: true,
      version: VERSION,
      // prod-deploy asks for mfa: one sign-in at that level serves a first request too.
      sign_in_acr_values: 'mfa',
    });
  });

  it('GET /v1/roles summarizes each role for the caller', async () => {
    const r = await alice.get<RolesResponse>('/v1/roles');
    expect(r.status).toBe(200);
    const prod = r.body.roles.find((x) => x.name === 'prod-deploy');
    expect(prod).toEqual({
      name: 'prod-deploy',
      description: 'Deploy to production',
      default_duration: '15m',
      max_duration: '1h',
      pending_ttl: '1h',
      approvals: 1,
      denials: 1,
      require_reason: true,
      step_up: { acr: 'mfa', max_age: '5m' },
      requesters: ['group:developers'],
      approvers: ['group:leads'],
      audience: 'https://k8s.prod.example.com',
      env: ['KUBE_TOKEN', 'JIT_INFO'],
      can_request: true,
      can_review: false,
      approvals_by: null,
      require_review_comment: false,
      extend: null,
      break_glass: null,
      max_pending: 50,
      rules: [],
      credential_ttl: '15m',
      use: {
        on_revoke: 'end',
        kill_at_expiry: false,
        audit_commands: 'name',
        audit_commands_required: false,
      },
    });
  });
});

describe('audit log API', () => {
  it('is for auditors only, in order, in pages', async () => {
    const denied = await alice.get('/v1/audit');
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({
      error: { hint: expect.stringContaining('group:auditors') },
    });
    const ada = actor(b, people.ada);
    const first = await ada.get<AuditPage>('/v1/audit?limit=3');
    expect(first.status).toBe(200);
    expect(first.body.items.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(first.body.next_after).toBe(3);
    expect(first.body.items[0]).toMatchObject({
      seq: 1,
      type: 'request.created',
      prev_hash: '0'.repeat(64),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      actor: { iss: b.issuer.issuer },
    });
    const next = await ada.get<AuditPage>('/v1/audit?after=3&limit=2');
    expect(next.body.items[0]!.seq).toBe(4);
    expect(next.body.items[0]!.prev_hash).toBe(first.body.items[2]!.hash);
    for (const q of ['after=-1', 'limit=5000', 'after=x', 'from=1']) {
      const r = await ada.get(`/v1/audit?${q}`);
      expect(r.status, q).toBe(400);
    }
  });
});
