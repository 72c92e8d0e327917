import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest, CredentialResponse } from '../../src/api/schemas.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { actor, file, POLICY, people } from './helpers.js';

/**
 * Credentials as a relying party sees them: discover the broker like any OIDC issuer, fetch its
 * JWKS, verify the JWT with issuer and audience, and trust its claims (DESIGN.md Flow 4).
 */

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker({ policy: POLICY, settings: { admins: 'admins' } });
});
afterAll(async () => b?.close());

async function approved(role = 'prod-deploy', duration = '20m') {
  const alice = actor(b, people.alice);
  const req = await file(alice, { role, duration, reason: 'deploy' });
  if (req.state === 'approved') return { alice, req };
  const r = await actor(b, people.lee).post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
    decision: 'approve',
  });
  return { alice, req: r.body };
}

/** What Kubernetes, Vault or a cloud provider does with the token. */
async function verifyAsRelyingParty(base: string, token: string, audience: string) {
  const discovery = await http<{ issuer: string; jwks_uri: string }>(
    base,
    'GET',
    '/.well-known/openid-configuration',
  );
  expect(discovery.status).toBe(200);
  const jwks = createRemoteJWKSet(new URL(discovery.body.jwks_uri));
  return jwtVerify(token, jwks, {
    issuer: discovery.body.issuer,
    audience,
    typ: 'jitctl-credential+jwt',
    algorithms: ['ES256', 'EdDSA'],
  });
}

describe('minting', () => {
  it('mints a JWT that a relying party verifies with the broker JWKS, ending with the window', async () => {
    const { alice, req } = await approved();
    const r = await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.body.token_type).toBe('Bearer');
    const { payload, protectedHeader } = await verifyAsRelyingParty(
      b.url,
      r.body.token,
      'https://k8s.prod.example.com',
    );
    expect(protectedHeader).toMatchObject({
      alg: 'ES256',
      typ: 'jitctl-credential+jwt',
      kid: expect.any(String),
    });
    expect(payload).toMatchObject({
      iss: b.url,
      sub: 'alice-sub',
      sub_iss: b.issuer.issuer,
      aud: 'https://k8s.prod.example.com',
      role: 'prod-deploy',
      request_id: req.id,
      approvers: [{ iss: b.issuer.issuer, sub: 'lee-sub' }],
      act: { iss: b.issuer.issuer, sub: 'lee-sub' },
      jti: expect.any(String),
    });
    expect(payload.nbf).toBe(payload.iat);
    // One lifetime of the role's credential.ttl (15m by default) inside the 20m grant.
    expect(payload.exp! - payload.iat!).toBe(15 * 60);
    expect(payload.exp! * 1000).toBeLessThanOrEqual(Date.parse(req.expires_at));
    expect(r.body.expires_at).toBe(new Date(payload.exp! * 1000).toISOString());
    expect(r.body.grant_expires_at).toBe(req.expires_at);
    expect(r.body.use).toEqual({
      on_revoke: 'end',
      kill_at_expiry: false,
      audit_commands: 'name',
      audit_commands_required: false,
    });
    expect(r.body.env).toEqual({
      KUBE_TOKEN: r.body.token,
      JIT_INFO: `prod-deploy ${req.id} until ${r.body.expires_at}`,
    });
    // A relying party for another audience refuses it.
    await expect(
      verifyAsRelyingParty(b.url, r.body.token, 'https://db.example.com'),
    ).rejects.toThrow();
  });

  it('mints again while approved, each with its own jti, each audited without the token', async () => {
    const { alice, req } = await approved('self-service');
    const one = await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
    const two = await alice.post<CredentialResponse>(`/v1/requests/${req.id}/credential`);
    const jtis = [one, two].map(
      (c) =>
        (
          JSON.parse(Buffer.from(c.body.token.split('.')[1]!, 'base64url').toString()) as {
            jti: string;
          }
        ).jti,
    );
    expect(new Set(jtis).size).toBe(2);
    const rows = (await rawSql(
      b.dbUrl,
      `select data from audit_events where request_id = '${req.id}' and type = 'credential.minted' order by seq`,
    )) as { data: string }[];
    expect(rows.map((r) => (JSON.parse(r.data) as { jti: string }).jti)).toEqual(jtis);
    expect(JSON.parse(rows[0]!.data)).toEqual({
      jti: jtis[0],
      aud: 'https://ro.example.com',
      kid: expect.any(String),
      iat: expect.any(String),
      exp: one.body.expires_at,
    });
    const everything = JSON.stringify(await rawSql(b.dbUrl, 'select * from audit_events'));
    expect(everything).not.toContain(one.body.token);
    expect(everything).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
    expect(b.logs()).not.toContain(one.body.token.split('.')[2]);
    expect(b.logs()).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  });

  it('mints only for the requester, and only while approved', async () => {
    const { req } = await approved();
    for (const p of [people.lee, people.root, people.ada, people.bob]) {
      const r = await actor(b, p).post(`/v1/requests/${req.id}/credential`);
      expect(r.status, p.sub).toBe(403);
      expect(r.text).not.toMatch(/eyJ/);
    }
    const pending = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'x' });
    const early = await actor(b, people.alice).post(`/v1/requests/${pending.id}/credential`);
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({
      error: { code: 'invalid_state', message: expect.stringContaining('0 of 1 approvals') },
    });
  });

  it('serves discovery and JWKS for relying parties', async () => {
    const d = await http<Record<string, unknown>>(
      b.url,
      'GET',
      '/.well-known/openid-configuration',
    );
    expect(d.body).toMatchObject({
      issuer: b.url,
      jwks_uri: `${b.url}/.well-known/jwks.json`,
      id_token_signing_alg_values_supported: ['ES256'],
    });
    const jwks = await http<{ keys: Record<string, unknown>[] }>(
      b.url,
      'GET',
      '/.well-known/jwks.json',
    );
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.body.keys[0]).not.toHaveProperty('d');
  });
});

describe('signing keys', () => {
  it('keeps the database key across restarts', async () => {
    const first = await startTestBroker({ policy: POLICY });
    const kid1 = (
      await http<{ keys: { kid: string }[] }>(first.url, 'GET', '/.well-known/jwks.json')
    ).body.keys[0]!.kid;
    await first.broker.close();
    const second = await startTestBroker({
      policy: POLICY,
      dbUrl: first.dbUrl,
      issuer: first.issuer,
    });
    try {
      const kid2 = (
        await http<{ keys: { kid: string }[] }>(second.url, 'GET', '/.well-known/jwks.json')
      ).body.keys[0]!.kid;
      expect(kid2).toBe(kid1);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it('signs with Ed25519 from a 0600 key file when configured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-key-'));
    const keyFile = join(dir, 'keys', 'signing.jwk');
    const ed = await startTestBroker({
      policy: POLICY,
      settings: { signing_key: keyFile, signing_alg: 'EdDSA' },
    });
    try {
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'keys')).mode & 0o777).toBe(0o700);
      const req = await file(actor(ed, people.alice), { role: 'self-service' });
      const r = await actor(ed, people.alice).post<CredentialResponse>(
        `/v1/requests/${req.id}/credential`,
      );
      expect(decodeProtectedHeader(r.body.token)).toMatchObject({ alg: 'EdDSA' });
      const { payload } = await verifyAsRelyingParty(
        ed.url,
        r.body.token,
        'https://ro.example.com',
      );
      expect(payload.sub).toBe('alice-sub');
    } finally {
      await ed.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
