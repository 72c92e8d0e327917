import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GrantStatus } from '../../src/api/grant.js';
import type {
  AccessRequest,
  CredentialResponse,
  RevocationsResponse,
} from '../../src/api/schemas.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { webhookReceiver } from '../support/receivers.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';
import { actor, file, people } from './helpers.js';

/**
 * Revocation as relying parties and the credential's holder see it (issue 13): credentials that
 * last the role's `credential.ttl`, recorded by jti; revoking with a reason; the holder's grant
 * check and its long poll; RFC 7662 introspection for configured resource servers; the
 * revocation list with a cursor and a long poll; and a JWKS-only verifier that stops accepting
 * within one credential lifetime. Real broker, real issuer, real database.
 */

const MIN = 60_000;
const SECRET = 'k8s-prod-introspection-secret-0123456789abcdef';
const SHORT_SECRET = 'short-but-configured';
const AUD = 'https://jit.example.com';

const POLICY = `
roles:
  prod-deploy:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 1h
    max_duration: 2h
    credential:
      audience: https://k8s.prod.example.com
      ttl: 1m
      env: { KUBE_TOKEN: "{{token}}" }
  self-service:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    default_duration: 10m
    max_duration: 1h
    credential:
      audience: https://ro.example.com
  db-read:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    default_duration: 30m
    max_duration: 1h
    on_revoke: warn
    kill_at_expiry: true
    audit_commands: full
    credential:
      audience: https://db.example.com
`;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let vault: TestIssuer;
let b: TestBroker;

/** The resource servers; the one signing in with a Kubernetes token needs its trusted issuer. */
const resourceServers = (withVault = true) =>
  JSON.stringify([
    { client_id: 'k8s-prod', client_secret_sha256: sha(SECRET) },
    {
      client_id: 'db-only',
      client_secret_sha256: sha(`${SECRET}-db`),
      audiences: ['https://db.example.com'],
    },
    { client_id: 'too-short', client_secret_sha256: sha(SHORT_SECRET) },
    ...(withVault
      ? [
          {
            client_id: 'vault',
            trusted_issuer: 'vault-k8s',
            subject: 'system:serviceaccount:vault:vault',
          },
        ]
      : []),
  ]);

const trustedIssuers = (issuer: string) =>
  JSON.stringify([
    {
      name: 'vault-k8s',
      issuer,
      audience: AUD,
      conditions: { namespace: 'vault' },
      groups: ['resource-servers'],
    },
  ]);

beforeAll(async () => {
  vault = await startTestIssuer({ clientId: 'k8s' });
  b = await startTestBroker({
    policy: POLICY,
    settings: {
      admins: 'admins',
      resource_servers: resourceServers(),
      trusted_issuers: trustedIssuers(vault.issuer),
    },
  });
}, 60_000);
afterAll(async () => {
  await b?.close();
  await vault?.close();
});

async function granted(role = 'prod-deploy', duration = '1h') {
  const alice = actor(b, people.alice);
  let req = await file(alice, { role, duration });
  if (req.state !== 'approved') {
    req = (
      await actor(b, people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
        decision: 'approve',
      })
    ).body;
  }
  return { alice, req };
}

async function mint(id: string) {
  const r = await actor(b, people.alice).post<CredentialResponse>(`/v1/requests/${id}/credential`);
  expect(r.status, r.text).toBe(200);
  return r.body;
}

const status = (token: string, query = '', headers: Record<string, string> = {}) =>
  http<GrantStatus>(b.url, 'GET', `/v1/credential/status${query}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

const introspect = (token: string, authorization = basic('k8s-prod', SECRET), broker = b) =>
  http<Record<string, unknown>>(broker.url, 'POST', '/v1/introspect', {
    raw: new URLSearchParams({ token }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
  });

const revocations = (query = '', authorization = basic('k8s-prod', SECRET), broker = b) =>
  http<RevocationsResponse>(broker.url, 'GET', `/v1/revocations${query}`, {
    headers: { authorization },
  });

describe('credential lifetime', () => {
  it('lasts the role’s credential.ttl inside a longer grant, and is recorded by jti', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const claims = decodeJwt(c.token);
    expect(claims.exp! - claims.iat!).toBe(60);
    expect(c.grant_expires_at).toBe(req.expires_at);
    expect(Date.parse(c.expires_at)).toBeLessThan(Date.parse(req.expires_at));
    const rows = (await rawSql(
      b.dbUrl,
      `select jti, request_id, role, kid, audience, expires_at from credentials where request_id = '${req.id}'`,
    )) as { jti: string; expires_at: number | string }[];
    expect(rows).toEqual([
      {
        jti: claims.jti,
        request_id: req.id,
        role: 'prod-deploy',
        kid: expect.any(String),
        audience: 'https://k8s.prod.example.com',
        expires_at: expect.anything(),
      },
    ]);
    expect(Number(rows[0]!.expires_at)).toBe(claims.exp! * 1000);
  });

  it('never outlives the grant: a 10m grant of a role with the 15m default ends with the window', async () => {
    const { req } = await granted('self-service', '10m');
    const c = await mint(req.id);
    expect(c.expires_at.slice(0, 19)).toBe(req.expires_at.slice(0, 19));
  });

  it('carries the role’s settings for the CLI', async () => {
    const { req } = await granted('db-read', '30m');
    const c = await mint(req.id);
    expect(c.use).toEqual({
      on_revoke: 'warn',
      kill_at_expiry: true,
      audit_commands: 'full',
      audit_commands_required: false,
    });
  });
});

describe('GET /v1/credential/status (the holder asks after its grant)', () => {
  it('answers for an active grant with its end and the role’s settings, and an ETag', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const r = await status(c.token);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toEqual({
      active: true,
      request_id: req.id,
      role: 'prod-deploy',
      state: 'approved',
      expires_at: req.expires_at,
      revoked: null,
      use: {
        on_revoke: 'end',
        kill_at_expiry: false,
        audit_commands: 'name',
        audit_commands_required: false,
      },
    });
    expect(r.headers.etag).toMatch(/^"approved\.\d+"$/);
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('still answers with a credential that expired while the grant lasts (the CLI mints anew)', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    b.clock.advance(2 * MIN);
    const r = await status(c.token);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ active: true, state: 'approved' });
  });

  it('says who revoked the grant, when and why', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const revoked = await actor(b, people.lee).post(`/v1/requests/${req.id}/revoke`, {
      reason: 'INC-4211 is over',
    });
    expect(revoked.status, revoked.text).toBe(200);
    const r = await status(c.token);
    expect(r.body).toMatchObject({
      active: false,
      state: 'revoked',
      revoked: {
        at: expect.any(String),
        by: { iss: b.issuer.issuer, sub: 'lee-sub', name: 'Lee' },
        reason: 'INC-4211 is over',
      },
    });
  });

  it('wakes a waiting holder within moments of the revocation', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const first = await status(c.token);
    const started = Date.now();
    const waiting = status(c.token, '?wait=30s', { 'if-none-match': first.headers.etag as string });
    await new Promise((r) => setTimeout(r, 100));
    await actor(b, people.alice).post(`/v1/requests/${req.id}/revoke`, {});
    const r = await waiting;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.body).toMatchObject({
      state: 'revoked',
      revoked: { by: { sub: 'alice-sub' }, reason: null },
    });
  });

  it('refuses what is not one of its credentials, as a failed sign-in', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const [h, p, s] = c.token.split('.');
    const forged = `${h}.${Buffer.from(
      JSON.stringify({ ...decodeJwt(c.token), request_id: 'req_someoneElse1' }),
    ).toString('base64url')}.${s}`;
    const session = await b.issuer.token(people.alice);
    for (const [token, why] of [
      [forged, 'the signature does not verify'],
      [session, 'not a jitctl credential'],
      ['not-a-jwt', 'not a JWT'],
      [`${h}.${p}.${s}=`, 'padded'],
    ] as const) {
      const r = await status(token);
      expect(r.status, token).toBe(401);
      expect(r.text).toContain(why);
      expect(r.text).not.toContain(token);
    }
    const none = await http(b.url, 'GET', '/v1/credential/status');
    expect(none.status).toBe(401);
  });
});

describe('revoking', () => {
  it('records the reason and the jtis of the credentials still valid', async () => {
    const { req } = await granted();
    const one = decodeJwt((await mint(req.id)).token).jti;
    const two = decodeJwt((await mint(req.id)).token).jti;
    const r = await actor(b, people.lee).post(`/v1/requests/${req.id}/revoke`, {
      reason: 'left the incident',
    });
    expect(r.status).toBe(200);
    const rows = (await rawSql(
      b.dbUrl,
      `select data from audit_events where request_id = '${req.id}' and type = 'request.revoked'`,
    )) as { data: string }[];
    expect(JSON.parse(rows[0]!.data)).toEqual({
      window_ends_at: req.expires_at,
      reason: 'left the incident',
      jtis: [one, two],
    });
    // And no more credentials for it.
    const again = await actor(b, people.alice).post(`/v1/requests/${req.id}/credential`);
    expect(again.status).toBe(409);
  });

  it('refuses a malformed reason', async () => {
    const { req } = await granted();
    const lee = actor(b, people.lee);
    for (const body of [{ reason: 5 }, { reason: 'x'.repeat(1001) }, { why: 'x' }, []]) {
      const r = await lee.post(`/v1/requests/${req.id}/revoke`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    const state = await lee.get<AccessRequest>(`/v1/requests/${req.id}`);
    expect(state.body.state).toBe('approved');
  });
});

describe('POST /v1/introspect (RFC 7662)', () => {
  it('is listed in the discovery document', async () => {
    const d = await http<Record<string, unknown>>(
      b.url,
      'GET',
      '/.well-known/openid-configuration',
    );
    expect(d.body.introspection_endpoint).toBe(`${b.url}/v1/introspect`);
  });

  it('answers the standard claims for an active credential, and active: false once revoked', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const r = await introspect(c.token);
    expect(r.status, r.text).toBe(200);
    const claims = decodeJwt(c.token);
    expect(r.body).toMatchObject({
      active: true,
      token_type: 'Bearer',
      iss: b.url,
      sub: 'alice-sub',
      aud: 'https://k8s.prod.example.com',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      role: 'prod-deploy',
      request_id: req.id,
    });
    expect(r.headers['cache-control']).toBe('no-store');
    await actor(b, people.lee).post(`/v1/requests/${req.id}/revoke`, {});
    const after = await introspect(c.token);
    expect(after.status).toBe(200);
    expect(after.body).toEqual({ active: false });
  });

  it('answers active: false for expired, unknown, forged and foreign tokens, and nothing more', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const session = await b.issuer.token(people.alice);
    const [h, , s] = c.token.split('.');
    for (const token of [
      'garbage',
      session,
      `${h}.${Buffer.from('{"request_id":"req_x"}').toString('base64url')}.${s}`,
    ]) {
      const r = await introspect(token);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ active: false });
    }
    b.clock.advance(61_000);
    expect((await introspect(c.token)).body).toEqual({ active: false });
  });

  it('answers only about its own audiences to a resource server limited to them', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const r = await introspect(c.token, basic('db-only', `${SECRET}-db`));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ active: false });
  });

  it('refuses callers that are not resource servers: 401 invalid_client', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const dev = `Bearer ${await b.issuer.token(people.alice)}`;
    const auditor = `Bearer ${await b.issuer.token(people.ada)}`;
    for (const authorization of [
      dev,
      auditor,
      basic('k8s-prod', 'wrong-secret-wrong-secret-wrong-secret'),
      basic('nobody', SECRET),
      basic('too-short', SHORT_SECRET),
      'Basic !!!',
      `Bearer ${c.token}`,
    ]) {
      const r = await introspect(c.token, authorization);
      expect(r.status, authorization).toBe(401);
      expect(r.body).toMatchObject({ error: 'invalid_client' });
      expect(r.headers['www-authenticate']).toContain('Basic');
      expect(r.text).not.toContain(c.token);
    }
    const none = await http(b.url, 'POST', '/v1/introspect', {
      raw: `token=${c.token}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(none.status).toBe(401);
  });

  it('takes a resource server’s own token from a trusted issuer', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const own = await vault.token(
      { sub: 'system:serviceaccount:vault:vault', acr: null, auth_time: null },
      { aud: AUD, extra: { namespace: 'vault' } },
    );
    const r = await introspect(c.token, `Bearer ${own}`);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ active: true, jti: decodeJwt(c.token).jti });
    const other = await vault.token(
      { sub: 'system:serviceaccount:vault:intruder', acr: null, auth_time: null },
      { aud: AUD, extra: { namespace: 'vault' } },
    );
    expect((await introspect(c.token, `Bearer ${other}`)).status).toBe(401);
  });

  it('wants a form with the token', async () => {
    const authorization = basic('k8s-prod', SECRET);
    const json = await http(b.url, 'POST', '/v1/introspect', {
      body: { token: 'x' },
      headers: { authorization },
    });
    expect(json.status).toBe(400);
    expect(json.body).toMatchObject({ error: 'invalid_request' });
    const empty = await http(b.url, 'POST', '/v1/introspect', {
      raw: 'token_type_hint=access_token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
    });
    expect(empty.status).toBe(400);
    expect(empty.body).toMatchObject({ error: 'invalid_request' });
  });
});

describe('GET /v1/revocations', () => {
  it('lists jti, request, role, when, who and why, for resource servers and auditors only', async () => {
    const { req } = await granted();
    const jti = decodeJwt((await mint(req.id)).token).jti;
    await actor(b, people.lee).post(`/v1/requests/${req.id}/revoke`, { reason: 'done' });
    for (const authorization of [
      basic('k8s-prod', SECRET),
      `Bearer ${await b.issuer.token(people.ada)}`,
      `Bearer ${await b.issuer.token(people.root)}`,
    ]) {
      const r = await revocations('', authorization);
      expect(r.status, authorization).toBe(200);
      expect(r.body.items.find((i) => i.request_id === req.id)).toEqual({
        request_id: req.id,
        role: 'prod-deploy',
        jtis: [jti],
        revoked_at: expect.any(String),
        revoked_by: { iss: b.issuer.issuer, sub: 'lee-sub', name: 'Lee' },
        reason: 'done',
        expires_at: expect.any(String),
      });
      expect(typeof r.body.next_cursor).toBe('string');
    }
    const dev = await revocations('', `Bearer ${await b.issuer.token(people.alice)}`);
    expect(dev.status).toBe(403);
    expect((await http(b.url, 'GET', '/v1/revocations')).status).toBe(401);
    expect(
      (await revocations('', basic('k8s-prod', 'nope-nope-nope-nope-nope-nope-nope'))).status,
    ).toBe(401);
  });

  it('is followed with a cursor and a long poll that wakes on the next revocation', async () => {
    const start = await revocations();
    expect(start.status).toBe(200);
    const { req } = await granted();
    const jti = decodeJwt((await mint(req.id)).token).jti;
    const began = Date.now();
    const waiting = revocations(`?cursor=${start.body.next_cursor}&wait=30s`);
    await new Promise((r) => setTimeout(r, 100));
    await actor(b, people.alice).post(`/v1/requests/${req.id}/revoke`, { reason: 'mine' });
    const next = await waiting;
    expect(Date.now() - began).toBeLessThan(5_000);
    expect(next.body.items.map((i) => [i.request_id, i.jtis])).toEqual([[req.id, [jti]]]);
    // Nothing new after it: the same cursor back once the wait is over.
    const quiet = await revocations(`?cursor=${next.body.next_cursor}&wait=1s`);
    expect(quiet.body).toEqual({ items: [], next_cursor: next.body.next_cursor });
  });

  it('refuses a cursor it did not hand out, and a wait without one', async () => {
    expect((await revocations('?cursor=bogus')).status).toBe(400);
    expect((await revocations('?wait=5s')).status).toBe(400);
    expect((await revocations('?limit=0&cursor=cjE6MA')).status).toBe(400);
  });
});

describe('a relying party that checks only signatures (the JWKS)', () => {
  it('stops accepting within one credential.ttl of the revocation: nothing fresh is minted', async () => {
    const { req } = await granted();
    const c = await mint(req.id);
    const jwks = createRemoteJWKSet(new URL(`${b.url}/.well-known/jwks.json`));
    const verify = (token: string) =>
      jwtVerify(token, jwks, {
        issuer: b.url,
        audience: 'https://k8s.prod.example.com',
        currentDate: new Date(b.clock.now()),
      });
    await verify(c.token);
    await actor(b, people.lee).post(`/v1/requests/${req.id}/revoke`, {});
    // The trade-off: until its own exp the revoked credential still verifies by signature.
    await verify(c.token);
    expect((await actor(b, people.alice).post(`/v1/requests/${req.id}/credential`)).status).toBe(
      409,
    );
    b.clock.advance(61_000);
    await expect(verify(c.token)).rejects.toThrow(/exp/);
  });
});

describe('the request.revoked notification', () => {
  it('carries the same revocation as the list, in a signed Standard Webhook', async () => {
    const whSecret = `whsec_${Buffer.alloc(32, 0x3c).toString('base64')}`;
    const hook = await webhookReceiver({ secret: whSecret });
    const nb = await startTestBroker({
      policy: `${POLICY}\nnotify:\n  - webhook: ${hook.url}\n    events: [request.revoked]\n`,
      settings: { webhook_secrets: JSON.stringify({ default: 'env:JIT_WEBHOOK_SECRET' }) },
      start: {
        env: { JIT_WEBHOOK_SECRET: whSecret },
        notify: { pollIntervalMs: 50, backoffMs: 20, maxBackoffMs: 200, timeoutMs: 5_000 },
      },
    });
    try {
      const alice = actor(nb, people.alice);
      const req = await file(alice, { role: 'self-service' });
      const c = await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
      const jti = decodeJwt(c.body.token).jti;
      await actor(nb, people.lee).post(`/v1/requests/${req.id}/revoke`, { reason: 'rotation' });
      const [h] = await hook.until((r) => r.some((x) => x.body.type === 'request.revoked'));
      expect(h!.verified).toBe(true);
      expect(h!.body.revocation).toEqual({
        request_id: req.id,
        role: 'self-service',
        jtis: [jti],
        revoked_at: expect.any(String),
        revoked_by: { iss: nb.issuer.issuer, sub: 'lee-sub', name: 'Lee' },
        reason: 'rotation',
        expires_at: c.body.expires_at,
      });
      expect(h!.body.comment).toBe('rotation');
      expect(h!.raw).not.toContain(c.body.token);
    } finally {
      await nb.close();
      await hook.close();
    }
  });
});

describe('replicas sharing one PostgreSQL database', () => {
  it('honour a revocation made by the other: grant check, its long poll, introspection, the list', async () => {
    const a = await startTestBroker({
      policy: POLICY,
      dialect: 'postgres',
      settings: { resource_servers: resourceServers(false) },
    });
    const other = await startTestBroker({
      policy: POLICY,
      issuer: a.issuer,
      clock: a.clock,
      dbUrl: a.dbUrl,
      settings: { resource_servers: resourceServers(false) },
    });
    try {
      const alice = actor(a, people.alice);
      let req = await file(alice, { role: 'prod-deploy' });
      req = (
        await actor(a, people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
          decision: 'approve',
        })
      ).body;
      const c = (await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`)).body;
      const auth = { authorization: `Bearer ${c.token}` };
      const first = await http<GrantStatus>(a.url, 'GET', '/v1/credential/status', {
        headers: auth,
      });
      expect(first.body.active).toBe(true);
      const list = await revocations('', basic('k8s-prod', SECRET), a);
      const holder = http<GrantStatus>(a.url, 'GET', '/v1/credential/status?wait=30s', {
        headers: { ...auth, 'if-none-match': first.headers.etag as string },
      });
      const follower = revocations(
        `?cursor=${list.body.next_cursor}&wait=30s`,
        basic('k8s-prod', SECRET),
        a,
      );
      await new Promise((r) => setTimeout(r, 200));
      const began = Date.now();
      const revoked = await actor(other, people.lee).post(`/v1/requests/${req.id}/revoke`, {
        reason: 'from the other replica',
      });
      expect(revoked.status).toBe(200);
      const [woken, followed] = await Promise.all([holder, follower]);
      expect(Date.now() - began).toBeLessThan(5_000);
      expect(woken.body).toMatchObject({
        state: 'revoked',
        revoked: { reason: 'from the other replica', by: { sub: 'lee-sub' } },
      });
      expect(followed.body.items.map((i) => i.request_id)).toEqual([req.id]);
      expect((await introspect(c.token, basic('k8s-prod', SECRET), a)).body).toEqual({
        active: false,
      });
    } finally {
      await other.close();
      await a.close();
    }
  });
});
