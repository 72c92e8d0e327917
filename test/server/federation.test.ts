import {
  base64url,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  SignJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AccessRequest,
  AuditPage,
  CredentialResponse,
  MeResponse,
} from '../../src/api/schemas.js';
import { http, rawSql, startTestBroker, type TestBroker, testClock } from '../support/broker.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';
import { actor, people } from './helpers.js';

/**
 * Federated login for pipelines against the real broker: a CI platform (a second test issuer with
 * its own JWKS on 127.0.0.1) mints OIDC tokens, `POST /v1/token` exchanges them (RFC 8693) for
 * broker session tokens, and those go through the same policy, reviews and minting as people.
 * Every refusal is a 4xx in RFC 6749 §5.2's shape saying which check failed, never a 5xx and
 * never an echo of the token.
 */

const AUD = 'https://jit.example.com';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

const POLICY = `
roles:
  prod-deploy:
    requesters: [group:developers, group:ci-deployers, group:ci-staging]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}" }
  staging-deploy:
    requesters: [group:ci-staging]
    approvers: [group:leads]
    approvals: 0
    default_duration: 10m
    max_duration: 1h
    credential:
      audience: https://k8s.staging.example.com
  ci-peer:
    requesters: [group:ci-deployers]
    approvers: [group:ci-deployers]
    approvals: 1
    default_duration: 10m
    max_duration: 1h
    credential:
      audience: https://peer.example.com
  by-subject:
    requesters: ["user:gitlab-project:acme/app"]
    approvers: [group:leads]
    approvals: 0
    default_duration: 5m
    max_duration: 10m
    credential:
      audience: https://named.example.com
`;

/** The claims GitHub Actions puts in a deployment job's token. */
const githubClaims = (over: Record<string, unknown> = {}) => ({
  repository: 'acme/app',
  repository_owner: 'acme',
  ref: 'refs/heads/main',
  environment: 'production',
  job_workflow_ref: 'acme/app/.github/workflows/deploy.yml@refs/heads/main',
  ...over,
});

let ci: TestIssuer;
let gitlab: TestIssuer;
let b: TestBroker;

function trusted(ciIssuer: string, gitlabIssuer: string) {
  return JSON.stringify([
    {
      name: 'github-deploy',
      issuer: ciIssuer,
      audience: AUD,
      conditions: {
        repository: 'acme/app',
        ref: 'refs/heads/main',
        environment: ['production'],
        job_workflow_ref: { pattern: 'acme/app/.github/workflows/*@refs/heads/main' },
      },
      subject: 'github:{{repository}}:{{environment}}',
      groups: ['ci-deployers'],
      acr: 'mfa',
    },
    {
      name: 'github-staging',
      issuer: ciIssuer,
      audience: AUD,
      conditions: { repository: 'acme/app', environment: 'staging' },
      subject: 'github:{{repository}}:{{environment}}',
      groups: ['ci-staging'],
      session_ttl: '2m',
    },
    {
      name: 'gitlab',
      issuer: gitlabIssuer,
      audience: AUD,
      algorithms: ['ES256'],
      conditions: { project_path: 'acme/app' },
      subject: 'gitlab-project:{{project_path}}',
    },
  ]);
}

/** A GitHub-like token: sub in GitHub's format, no groups/acr of a person. */
const ciToken = (
  claims: Record<string, unknown> = githubClaims(),
  opts: { aud?: string; expiresIn?: number } = {},
) =>
  ci.token(
    {
      sub: `repo:${String(claims.repository)}:environment:${String(claims.environment)}`,
      acr: null,
      auth_time: null,
    },
    { aud: opts.aud ?? AUD, expiresIn: opts.expiresIn ?? 3600, extra: claims },
  );

function form(params: Record<string, string | string[]>): string {
  const f = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) f.append(k, x);
  return f.toString();
}

interface OAuthErrorBody {
  error: string;
  error_description: string;
}

async function exchange(params: Record<string, string | string[]>, broker = b) {
  return http<Record<string, unknown>>(broker.url, 'POST', '/v1/token', {
    raw: form(params),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
}

const exchangeToken = (subject_token: string, broker = b) =>
  exchange({ grant_type: GRANT, subject_token, subject_token_type: JWT_TYPE }, broker);

async function session(token: string, broker = b): Promise<string> {
  const r = await exchangeToken(token, broker);
  if (r.status !== 200) throw new Error(`exchange answered ${r.status}: ${r.text}`);
  return r.body.access_token as string;
}

/** Asserts a refusal: the status, the RFC 6749 error code, a description, and no token echoed. */
async function refused(
  res: Promise<Awaited<ReturnType<typeof exchange>>>,
  error: string,
  description: string | RegExp,
  secret?: string,
  status = 400,
) {
  const r = await res;
  expect(r.status, r.text).toBe(status);
  const body = r.body as unknown as OAuthErrorBody;
  expect(Object.keys(body).sort()).toEqual(['error', 'error_description']);
  expect(body.error).toBe(error);
  if (typeof description === 'string') expect(body.error_description).toContain(description);
  else expect(body.error_description).toMatch(description);
  expect(r.headers['cache-control']).toBe('no-store');
  if (secret) {
    expect(r.text).not.toContain(secret);
    expect(r.text).not.toContain(secret.split('.')[2]!);
  }
  return body;
}

beforeAll(async () => {
  ci = await startTestIssuer({ clientId: 'ci' });
  gitlab = await startTestIssuer({ clientId: 'gitlab' });
  b = await startTestBroker({
    policy: POLICY,
    settings: { trusted_issuers: trusted(ci.issuer, gitlab.issuer), auditors: 'auditors' },
  });
}, 60_000);

afterAll(async () => {
  await b?.close();
  await ci?.close();
  await gitlab?.close();
});

describe('POST /v1/token: the exchange', () => {
  it('answers RFC 8693 §2.2 with a broker session token for the workload', async () => {
    const external = await ciToken();
    const r = await exchangeToken(external);
    expect(r.status, r.text).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers.pragma).toBe('no-cache');
    expect(Object.keys(r.body).sort()).toEqual([
      'access_token',
      'expires_in',
      'issued_token_type',
      'token_type',
    ]);
    expect(r.body).toMatchObject({
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
    });
    expect(r.body.expires_in).toBeGreaterThan(14 * 60);
    expect(r.body.expires_in).toBeLessThanOrEqual(15 * 60);

    const token = r.body.access_token as string;
    expect(decodeProtectedHeader(token).typ).toBe('jitctl-session+jwt');
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: b.broker.publicUrl,
      aud: b.broker.publicUrl,
      sub: 'github:acme/app:production',
      name: 'github-deploy',
      groups: ['ci-deployers'],
      acr: 'mfa',
      trusted_issuer: 'github-deploy',
      src_iss: ci.issuer,
      src_sub: 'repo:acme/app:environment:production',
    });
    expect(typeof claims.auth_time).toBe('number');
    expect(claims.exp! - claims.iat!).toBe(r.body.expires_in);
  });

  it('takes the id_token subject type too, and requested_token_type access_token or jwt', async () => {
    const t = await ciToken();
    for (const type of ['urn:ietf:params:oauth:token-type:id_token', JWT_TYPE]) {
      const r = await exchange({ grant_type: GRANT, subject_token: t, subject_token_type: type });
      expect(r.status, r.text).toBe(200);
    }
    const jwt = await exchange({
      grant_type: GRANT,
      subject_token: t,
      subject_token_type: JWT_TYPE,
      requested_token_type: JWT_TYPE,
      audience: b.broker.publicUrl,
    });
    expect(jwt.status, jwt.text).toBe(200);
    expect(jwt.body.issued_token_type).toBe(JWT_TYPE);
  });

  it('never lasts longer than the external token, nor than the entry’s session_ttl', async () => {
    const short = await exchangeToken(await ciToken(githubClaims(), { expiresIn: 90 }));
    expect(short.status, short.text).toBe(200);
    expect(short.body.expires_in).toBeLessThanOrEqual(90);
    expect(short.body.expires_in).toBeGreaterThan(80);
    const staging = await exchangeToken(await ciToken(githubClaims({ environment: 'staging' })));
    expect(staging.status, staging.text).toBe(200);
    expect(staging.body.expires_in).toBeLessThanOrEqual(120);
    expect(decodeJwt(staging.body.access_token as string)).toMatchObject({
      name: 'github-staging',
      groups: ['ci-staging'],
    });
    // No acr on this entry, and nothing a CI token says (acr, groups) is taken from it.
    const fancy = await ci.token(
      { sub: 'repo:acme/app', groups: ['leads', 'auditors'], acr: 'mfa' },
      { aud: AUD, extra: githubClaims({ environment: 'staging' }) },
    );
    const claims = decodeJwt(await session(fancy));
    expect(claims.groups).toEqual(['ci-staging']);
    expect(claims.acr).toBeUndefined();
    expect(claims.auth_time).toBeUndefined();
  });

  it('uses the token’s own sub when the entry has no subject template (GitLab, ES256)', async () => {
    const t = await gitlab.token(
      { sub: 'project_path:acme/app:ref_type:branch:ref:main', acr: null, auth_time: null },
      { alg: 'ES256', aud: AUD, extra: { project_path: 'acme/app' } },
    );
    const claims = decodeJwt(await session(t));
    expect(claims.sub).toBe('gitlab-project:acme/app');
    expect(claims.name).toBe('gitlab');
    expect(claims.groups).toEqual([]);
    // RS256 is not among this entry's algorithms.
    const rs = await gitlab.token({ sub: 'x' }, { aud: AUD, extra: { project_path: 'acme/app' } });
    await refused(
      exchangeToken(rs),
      'invalid_grant',
      'tokens signed with "RS256" are not accepted from',
      rs,
    );
  });
});

describe('POST /v1/token: refusals say which check failed', () => {
  it('wrong audience', async () => {
    const t = await ciToken(githubClaims(), { aud: 'https://github.com/acme' });
    const body = await refused(exchangeToken(t), 'invalid_grant', 'wrong audience', t);
    expect(body.error_description).toContain('not for this broker');
    // The expected audience is the operator's business, not an anonymous caller's.
    expect(body.error_description).not.toContain(AUD);
  });

  it('a failed claim condition, with what the token said and never what was expected', async () => {
    const t = await ciToken(githubClaims({ ref: 'refs/heads/feature', environment: 'production' }));
    const body = await refused(
      exchangeToken(t),
      'invalid_grant',
      'condition `ref` not met (the token says "refs/heads/feature")',
      t,
    );
    // Two entries trust this issuer: each says why it did not match.
    expect(body.error_description).toContain('github-deploy: condition `ref` not met');
    expect(body.error_description).toContain('github-staging: condition `environment` not met');
    const wf = await ciToken(
      githubClaims({ job_workflow_ref: 'evil/app/.github/workflows/x.yml@refs/heads/main' }),
    );
    await refused(exchangeToken(wf), 'invalid_grant', 'condition `job_workflow_ref` not met', wf);
    const other = await ciToken(githubClaims({ repository: 'mallory/app' }));
    const o = await refused(
      exchangeToken(other),
      'invalid_grant',
      'condition `repository` not met',
      other,
    );
    expect(o.error_description).not.toContain('acme/app');
  });

  it('an expired token', async () => {
    const t = await ciToken(githubClaims(), { expiresIn: -60 });
    await refused(exchangeToken(t), 'invalid_grant', 'the token has expired', t);
    // Within the 30 s of tolerance for clock skew, but expired all the same.
    const just = await ciToken(githubClaims(), { expiresIn: -5 });
    await refused(exchangeToken(just), 'invalid_grant', 'the token has expired', just);
  });

  it('an untrusted issuer (the people’s identity provider, a stranger)', async () => {
    const person = await b.issuer.token(people.alice, { aud: AUD });
    await refused(
      exchangeToken(person),
      'invalid_grant',
      `tokens from "${b.issuer.issuer}" are not trusted`,
      person,
    );
    const stranger = await ci.token(
      { sub: 'x' },
      { iss: 'https://evil.example.com', aud: AUD, extra: githubClaims() },
    );
    await refused(
      exchangeToken(stranger),
      'invalid_grant',
      'tokens from "https://evil.example.com" are not trusted',
      stranger,
    );
  });

  it('alg none, HS256 keyed with the public key, a key the issuer never published, a tampered payload', async () => {
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    const claims = {
      iss: ci.issuer,
      aud: AUD,
      sub: 'x',
      exp: Math.floor(Date.now() / 1000) + 600,
      ...githubClaims(),
    };
    const none = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
    await refused(
      exchangeToken(none),
      'invalid_grant',
      'tokens signed with "none" are not accepted',
    );
    const hs = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: 'rs-1' })
      .sign(new TextEncoder().encode('the public key, as an HMAC secret'));
    await refused(
      exchangeToken(hs),
      'invalid_grant',
      'tokens signed with "HS256" are not accepted',
      hs,
    );
    const unknownKid = await ci.hostile('unknown-kid', { sub: 'x' });
    // hostile() signs with aud = the CI issuer's client id; the key is refused before the audience.
    await refused(exchangeToken(unknownKid), 'invalid_grant', 'signed with a key', unknownKid);
    const [h, , s] = (await ciToken()).split('.');
    const tampered = `${h}.${enc({ ...claims, repository: 'acme/app', sub: 'forged' })}.${s}`;
    await refused(exchangeToken(tampered), 'invalid_grant', 'signature does not verify', tampered);
  });

  it('a broker credential or a broker session presented as the subject token', async () => {
    const alice = actor(b, people.alice);
    const lee = actor(b, people.lee);
    const req = await alice.post<AccessRequest>('/v1/requests', {
      role: 'prod-deploy',
      reason: 'x',
    });
    expect(req.status, req.text).toBe(201);
    expect(
      (await lee.post(`/v1/requests/${req.body.id}/reviews`, { decision: 'approve' })).status,
    ).toBe(200);
    const cred = await alice.post<CredentialResponse>(`/v1/requests/${req.body.id}/credential`);
    expect(cred.status, cred.text).toBe(200);
    await refused(
      exchangeToken(cred.body.token),
      'invalid_grant',
      'subject_token was issued by this broker',
      cred.body.token,
    );
    const sess = await session(await ciToken());
    await refused(
      exchangeToken(sess),
      'invalid_grant',
      'subject_token was issued by this broker',
      sess,
    );
  });

  it('malformed requests: grant type, token type, duplicates, delegation, target, scope, body', async () => {
    const t = await ciToken();
    const base = { grant_type: GRANT, subject_token: t, subject_token_type: JWT_TYPE };
    await refused(
      exchange({ subject_token: t, subject_token_type: JWT_TYPE }),
      'invalid_request',
      '`grant_type` is required',
      t,
    );
    await refused(
      exchange({ ...base, grant_type: 'client_credentials' }),
      'unsupported_grant_type',
      'grant_type must be',
      t,
    );
    await refused(
      exchange({ grant_type: GRANT, subject_token_type: JWT_TYPE }),
      'invalid_request',
      '`subject_token` is required',
    );
    await refused(
      exchange({ ...base, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }),
      'invalid_request',
      'subject_token_type "urn:ietf:params:oauth:token-type:saml2" is not supported',
      t,
    );
    await refused(
      exchange({ ...base, subject_token: [t, t] }),
      'invalid_request',
      '`subject_token` is given more than once',
      t,
    );
    await refused(
      exchange({ ...base, actor_token: t, actor_token_type: JWT_TYPE }),
      'invalid_request',
      'delegation (actor_token) is not supported',
      t,
    );
    await refused(
      exchange({ ...base, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }),
      'invalid_request',
      'is not issued here',
      t,
    );
    await refused(
      exchange({ ...base, audience: 'https://k8s.prod.example.com' }),
      'invalid_target',
      "audience must be the broker's public URL",
      t,
    );
    await refused(
      exchange({ ...base, resource: 'https://elsewhere.example.com' }),
      'invalid_target',
      "resource must be the broker's public URL",
      t,
    );
    await refused(exchange({ ...base, scope: 'admin' }), 'invalid_scope', 'scopes are not used', t);
    await refused(
      exchange({ ...base, subject_token: 'not-a-jwt' }),
      'invalid_grant',
      'subject_token is not a JWT',
    );
    await refused(
      exchange({ ...base, subject_token: `${t}${'A'.repeat(17_000)}` }),
      'invalid_request',
      'subject_token is longer than',
    );
    const json = await http(b.url, 'POST', '/v1/token', { body: base });
    expect(json.status).toBe(400);
    expect(json.body).toEqual({
      error: 'invalid_request',
      error_description: 'send the parameters as application/x-www-form-urlencoded (RFC 8693 §2.1)',
    });
    expect(json.text).not.toContain(t.split('.')[2]!);
    const text = await http(b.url, 'POST', '/v1/token', {
      raw: form(base),
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(400);
    expect((text.body as OAuthErrorBody).error).toBe('invalid_request');
    const big = await http(b.url, 'POST', '/v1/token', {
      raw: form({ ...base, padding: 'x'.repeat(70 * 1024) }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(big.status).toBe(413);
    expect((big.body as OAuthErrorBody).error).toBe('invalid_request');
  });

  it('other endpoints still refuse forms (the form parser is the token route’s own)', async () => {
    const r = await http(b.url, 'POST', '/v1/requests', {
      token: await b.issuer.token(people.alice),
      raw: 'role=prod-deploy',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(r.status).toBe(415);
  });

  it('the broker log and the audit log hold no token, only who and which entry', async () => {
    const t = await ciToken();
    const s = await session(t);
    const logs = b.logs();
    expect(logs).toContain('pipeline session issued');
    expect(logs).toContain('token exchange refused');
    for (const secret of [t, s]) expect(logs).not.toContain(secret.split('.')[2]!);
    const rows = (await rawSql(
      b.dbUrl,
      "select actor, data from audit_events where type = 'session.exchanged'",
    )) as {
      actor: string;
      data: string;
    }[];
    expect(rows.length).toBeGreaterThan(0);
    const last = rows[rows.length - 1]!;
    expect(JSON.parse(last.actor)).toEqual({
      iss: b.broker.publicUrl,
      sub: 'github:acme/app:production',
      name: 'github-deploy',
    });
    expect(JSON.parse(last.data)).toMatchObject({
      issuer: ci.issuer,
      subject: 'repo:acme/app:environment:production',
      trusted_issuer: 'github-deploy',
      groups: ['ci-deployers'],
      acr: 'mfa',
      jti: decodeJwt(s).jti,
    });
    const all = JSON.stringify(await rawSql(b.dbUrl, 'select * from audit_events'));
    for (const secret of [t, s]) expect(all).not.toContain(secret.split('.')[2]!);
  });
});

describe('a broker session token', () => {
  it('signs in to the API as the workload, with its groups', async () => {
    const s = await session(await ciToken());
    const me = await http<MeResponse>(b.url, 'GET', '/v1/me', { token: s });
    expect(me.status, me.text).toBe(200);
    expect(me.body).toMatchObject({
      iss: b.broker.publicUrl,
      sub: 'github:acme/app:production',
      name: 'github-deploy',
      email: null,
      groups: ['ci-deployers'],
      requestable: ['prod-deploy', 'ci-peer'],
      reviewable: ['ci-peer'],
      auditor: false,
    });
    const byName = await session(
      await gitlab.token(
        { sub: 'p' },
        { alg: 'ES256', aud: AUD, extra: { project_path: 'acme/app' } },
      ),
    );
    const named = await http<MeResponse>(b.url, 'GET', '/v1/me', { token: byName });
    expect(named.body.requestable).toEqual(['by-subject']);
  });

  it('requests, is approved by a lead, and gets a credential that names the workload', async () => {
    const ciActor = actor(b, people.alice, await session(await ciToken()));
    const req = await ciActor.post<AccessRequest>('/v1/requests', {
      role: 'prod-deploy',
      duration: '10m',
      reason: 'deploy abc123',
    });
    expect(req.status, req.text).toBe(201);
    expect(req.body.requester).toEqual({
      iss: b.broker.publicUrl,
      sub: 'github:acme/app:production',
      name: 'github-deploy',
    });
    const lee = actor(b, people.lee);
    const approved = await lee.post<AccessRequest>(`/v1/requests/${req.body.id}/reviews`, {
      decision: 'approve',
    });
    expect(approved.status, approved.text).toBe(200);
    expect(approved.body.state).toBe('approved');
    const cred = await ciActor.post<CredentialResponse>(`/v1/requests/${req.body.id}/credential`);
    expect(cred.status, cred.text).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${b.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(cred.body.token, jwks, {
      issuer: b.broker.publicUrl,
      audience: 'https://k8s.prod.example.com',
      typ: 'jitctl-credential+jwt',
    });
    expect(payload).toMatchObject({
      sub: 'github:acme/app:production',
      sub_iss: b.broker.publicUrl,
      role: 'prod-deploy',
    });
  });

  it('is refused by relying parties as a credential: another typ, and the broker as audience', async () => {
    const s = await session(await ciToken());
    const jwks = createRemoteJWKSet(new URL(`${b.url}/.well-known/jwks.json`));
    // A relying party that checks neither typ nor anything but iss and aud still refuses it.
    await expect(
      jwtVerify(s, jwks, { issuer: b.broker.publicUrl, audience: 'https://k8s.prod.example.com' }),
    ).rejects.toThrow(/"aud" claim/);
    await expect(
      jwtVerify(s, jwks, { issuer: b.broker.publicUrl, typ: 'jitctl-credential+jwt' }),
    ).rejects.toThrow(/"typ"/);
  });

  it('the same self-review rule: a workload cannot review its own request', async () => {
    const s = await session(await ciToken());
    const w = actor(b, people.alice, s);
    const req = await w.post<AccessRequest>('/v1/requests', { role: 'ci-peer' });
    expect(req.status, req.text).toBe(201);
    const review = await w.post<{ error: { code: string } }>(
      `/v1/requests/${req.body.id}/reviews`,
      { decision: 'approve' },
    );
    expect(review.status).toBe(403);
    expect(review.body.error.code).toBe('self_review');
  });

  it('cannot step up: a role with step_up is 403 for an entry without acr, and says what to do', async () => {
    const s = await session(await ciToken(githubClaims({ environment: 'staging' })));
    const r = await http<{ error: { code: string; message: string; hint: string } }>(
      b.url,
      'POST',
      '/v1/requests',
      {
        token: s,
        body: { role: 'prod-deploy', reason: 'x' },
      },
    );
    expect(r.status, r.text).toBe(403);
    expect(r.headers['www-authenticate']).toBeUndefined();
    expect(r.body.error.message).toBe(
      'requesting prod-deploy: this needs a sign-in of level "mfa"; a pipeline session cannot step up',
    );
    expect(r.body.error.hint).toContain('mark trusted issuer `github-staging` with `acr: mfa`');
    // An entry without acr may still request roles without step_up (approved at once here).
    const ok = await http<AccessRequest>(b.url, 'POST', '/v1/requests', {
      token: s,
      body: { role: 'staging-deploy' },
    });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.state).toBe('approved');
  });

  it('expires with the session, and a tampered one is refused', async () => {
    const s = await session(await ciToken());
    const [h, p, sig] = s.split('.');
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p!))) as Record<
      string,
      unknown
    >;
    const forged = `${h}.${base64url.encode(JSON.stringify({ ...claims, groups: ['leads', 'auditors'] }))}.${sig}`;
    const bad = await http<{ error: { message: string } }>(b.url, 'GET', '/v1/me', {
      token: forged,
    });
    expect(bad.status).toBe(401);
    expect(bad.body.error.message).toContain('signature does not verify');

    const clock = testClock();
    const own = await startTestBroker({
      policy: POLICY,
      clock,
      settings: { trusted_issuers: trusted(ci.issuer, gitlab.issuer) },
    });
    try {
      const mine = await session(await ciToken(), own);
      expect((await http(own.url, 'GET', '/v1/me', { token: mine })).status).toBe(200);
      clock.advance(16 * 60_000);
      const late = await http<{ error: { message: string } }>(own.url, 'GET', '/v1/me', {
        token: mine,
      });
      expect(late.status).toBe(401);
      expect(late.body.error.message).toContain('the pipeline session has expired');
    } finally {
      await own.close();
    }
  });
});

describe('brokers and their settings', () => {
  it('a replica that no longer trusts the entry refuses its sessions', async () => {
    const settings = { public_url: 'https://jit.example.com' };
    // Two replicas share one database: PostgreSQL (SQLite serves one broker).
    const a = await startTestBroker({
      policy: POLICY,
      dialect: 'postgres',
      issuer: b.issuer,
      settings: { ...settings, trusted_issuers: trusted(ci.issuer, gitlab.issuer) },
    });
    const other = JSON.stringify([JSON.parse(trusted(ci.issuer, gitlab.issuer))[2]]);
    const c = await startTestBroker({
      policy: POLICY,
      issuer: b.issuer,
      dbUrl: a.dbUrl,
      settings: { ...settings, trusted_issuers: other },
    });
    try {
      const s = await session(await ciToken(), a);
      expect((await http(a.url, 'GET', '/v1/me', { token: s })).status).toBe(200);
      const r = await http<{ error: { message: string } }>(c.url, 'GET', '/v1/me', { token: s });
      expect(r.status).toBe(401);
      expect(r.body.error.message).toContain('("github-deploy") is no longer trusted');
    } finally {
      await c.close();
      await a.close();
    }
  });

  it('a trusted issuer that cannot be reached is a 503 to retry, never a 500', async () => {
    const down = await startTestIssuer();
    down.setDown(true);
    const x = await startTestBroker({
      policy: POLICY,
      issuer: b.issuer,
      settings: {
        trusted_issuers: JSON.stringify([
          { issuer: down.issuer, audience: AUD, conditions: { repository: 'acme/app' } },
        ]),
      },
    });
    try {
      const t = await down.token({ sub: 'x' }, { aud: AUD, extra: { repository: 'acme/app' } });
      const body = await refused(
        exchangeToken(t, x),
        'temporarily_unavailable',
        `cannot fetch the signing keys of ${down.issuer}`,
        t,
        503,
      );
      expect(body.error_description).toContain('try again');
      down.setDown(false);
      // The failure is not cached for long: the next attempt after a second succeeds.
      await new Promise((r) => setTimeout(r, 1100));
      const ok = await exchangeToken(t, x);
      expect(ok.status, ok.text).toBe(200);
    } finally {
      await x.close();
      await down.close();
    }
  });

  it('a trusted issuer whose key endpoint fails is a 503 to retry, not invalid_grant', async () => {
    // Discovery works, the JWKS answers 500: jose's bare JOSEError is the issuer's fault.
    const broken = await startTestIssuer();
    broken.failJwks(true);
    const x = await startTestBroker({
      policy: POLICY,
      issuer: b.issuer,
      settings: {
        trusted_issuers: JSON.stringify([
          { issuer: broken.issuer, audience: AUD, conditions: { repository: 'acme/app' } },
        ]),
      },
    });
    try {
      const t = await broken.token({ sub: 'x' }, { aud: AUD, extra: { repository: 'acme/app' } });
      await refused(
        exchangeToken(t, x),
        'temporarily_unavailable',
        `cannot fetch the signing keys of ${broken.issuer}`,
        t,
        503,
      );
      broken.failJwks(false);
      const ok = await exchangeToken(t, x);
      expect(ok.status, ok.text).toBe(200);
    } finally {
      await x.close();
      await broken.close();
    }
  });

  it('without trusted_issuers the grant is unsupported', async () => {
    const x = await startTestBroker({ policy: POLICY, issuer: b.issuer });
    try {
      await refused(
        exchangeToken(await ciToken(), x),
        'unsupported_grant_type',
        'trusts no pipeline issuers',
      );
    } finally {
      await x.close();
    }
  });

  it('refuses to start when a role’s credential audience is the broker, the audience of sessions', async () => {
    await expect(
      startTestBroker({
        policy: `roles:\n  r:\n    requesters: [group:a]\n    approvers: [group:b]\n    max_duration: 1h\n    credential: { audience: "https://jit.example.com" }\n`,
        issuer: b.issuer,
        settings: {
          public_url: 'https://jit.example.com',
          trusted_issuers: trusted(ci.issuer, gitlab.issuer),
        },
      }),
    ).rejects.toThrow(
      'role r: credential.audience https://jit.example.com is the broker itself, which is the audience of pipeline sessions (trusted_issuers)',
    );
  });

  it('auditors see session.exchanged in the API, with no token in it', async () => {
    const r = await http<AuditPage>(b.url, 'GET', '/v1/audit?limit=1000', {
      token: await b.issuer.token(people.ada),
    });
    expect(r.status, r.text).toBe(200);
    const exchanged = r.body.items.filter((e) => e.type === 'session.exchanged');
    expect(exchanged.length).toBeGreaterThan(3);
    expect(exchanged[0]!.request_id).toBeNull();
  });
});
