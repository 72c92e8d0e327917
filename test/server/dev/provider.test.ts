import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkTotp,
  createDevIdentityProvider,
  currentTotp,
  DEMO_POLICY,
  DEV_USERS,
} from '../../../src/server/dev/index.js';
import { KEYS_FILE } from '../../../src/server/dev/keys.js';
import { html } from '../../../src/server/dev/pages.js';
import { issuerFor } from '../../../src/server/dev/provider.js';
import { STATE_FILE } from '../../../src/server/dev/state-adapter.js';
import { parsePolicy } from '../../../src/server/policy/index.js';
import { type StandInBroker, startStandInBroker } from '../../auth/stand-in-broker.js';
import { completeAuthorizationRequest, completeDeviceLogin } from '../../support/dev-browser.js';

/**
 * The development identity provider on its own, mounted under /idp of a plain HTTP server, with
 * openid-client as the relying party and the person played over HTTP. What the broker and the CLI
 * rely on: discovery, the grants, the claims in ID tokens, step-up, RFC 8628's interval and
 * slow_down, and the refusals.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const lee = DEV_USERS.find((u) => u.username === 'lee')!;
let b: StandInBroker;
let config: oidc.Configuration;

beforeAll(async () => {
  b = await startStandInBroker({ devicePollInterval: 1 });
  config = await oidc.discovery(new URL(b.idp.issuer), 'jitctl', undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  oidc.enableNonRepudiationChecks(config);
});
afterAll(async () => {
  await b?.stop();
});

async function deviceTokens(
  who: typeof alice,
  params: Record<string, string> = {},
  person: Parameters<typeof completeDeviceLogin>[2] = {},
) {
  const da = await oidc.initiateDeviceAuthorization(config, {
    scope: b.idp.scopes.join(' '),
    ...params,
  });
  const poll = oidc.pollDeviceAuthorizationGrant(config, da);
  await completeDeviceLogin(da.verification_uri_complete!, who, person);
  return poll;
}

describe('discovery', () => {
  it('describes one issuer under /idp with the grants, acr values and claims jitctl uses', () => {
    const m = config.serverMetadata();
    expect(m.issuer).toBe(`${b.url}/idp`);
    expect(b.idp.issuer).toBe(m.issuer);
    expect(b.idp.clientId).toBe('jitctl');
    expect(b.idp.scopes).toEqual(['openid', 'offline_access', 'profile', 'email', 'groups']);
    expect(m.device_authorization_endpoint).toBe(`${b.url}/idp/device/auth`);
    expect(m.token_endpoint).toBe(`${b.url}/idp/token`);
    expect(m.revocation_endpoint).toBe(`${b.url}/idp/token/revocation`);
    expect(m.acr_values_supported).toEqual(['pwd', 'mfa']);
    expect(m.claims_parameter_supported).toBe(true);
    expect(m.code_challenge_methods_supported).toEqual(['S256']);
    expect(m.authorization_response_iss_parameter_supported).toBe(true);
    expect(m.grant_types_supported).toEqual(
      expect.arrayContaining([
        'authorization_code',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ]),
    );
    expect(m.claims_supported).toEqual(
      expect.arrayContaining(['acr', 'amr', 'auth_time', 'sid', 'groups', 'email']),
    );
    expect(m.dpop_signing_alg_values_supported).toBeUndefined();
  });

  it('answers only under its prefix, and says what it is at /idp', async () => {
    const home = await request(`${b.url}/idp`);
    expect(home.statusCode).toBe(200);
    expect(await home.body.text()).toContain('Development identity provider');
    const elsewhere = await new Promise<number>((resolve) => {
      const srv = createServer((req, res) => b.idp.handle(req, res));
      srv.listen(0, '127.0.0.1', async () => {
        const port = (srv.address() as { port: number }).port;
        const r = await request(`http://127.0.0.1:${port}/v1/config`);
        await r.body.dump();
        srv.close();
        resolve(r.statusCode);
      });
    });
    expect(elsewhere).toBe(404);
  });
});

describe('ID tokens', () => {
  it('password sign-in: acr pwd, amr [pwd], auth_time, groups, email; RS256 from the JWKS', async () => {
    const tokens = await deviceTokens(alice, {}, { mfa: false });
    expect(tokens.refresh_token).toBeTruthy();
    const { payload } = await jwtVerify(
      tokens.id_token!,
      createRemoteJWKSet(new URL(`${b.idp.issuer}/jwks`)),
      {
        issuer: b.idp.issuer,
        audience: 'jitctl',
        algorithms: ['RS256'],
      },
    );
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('RS256');
    expect(payload).toMatchObject({
      sub: 'alice',
      acr: 'pwd',
      amr: ['pwd'],
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice Developer',
      preferred_username: 'alice',
      groups: ['developers'],
    });
    expect(typeof payload.auth_time).toBe('number');
    expect(payload.exp! - payload.iat!).toBe(900);
  });

  it('password + one-time code: acr mfa, amr [pwd, otp, mfa]', async () => {
    const tokens = await deviceTokens(lee, {}, { mfa: true });
    expect(tokens.claims()).toMatchObject({
      sub: 'lee',
      acr: 'mfa',
      amr: ['pwd', 'otp', 'mfa'],
      groups: ['leads'],
    });
  });

  it('refresh keeps the person, the acr and the auth_time, and rotates the refresh token', async () => {
    const first = await deviceTokens(lee, {}, { mfa: true });
    const refreshed = await oidc.refreshTokenGrant(config, first.refresh_token!);
    expect(refreshed.claims()).toMatchObject({
      sub: 'lee',
      acr: 'mfa',
      auth_time: first.claims()!.auth_time,
      groups: ['leads'],
    });
    expect(refreshed.refresh_token).not.toBe(first.refresh_token);
    // Single use: the old one replayed is refused (and ends the grant).
    await expect(oidc.refreshTokenGrant(config, first.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('step-up', () => {
  const essentialMfa = JSON.stringify({ id_token: { acr: { essential: true, values: ['mfa'] } } });

  it('an essential mfa acr makes the form insist on the code', async () => {
    const da = await oidc.initiateDeviceAuthorization(config, {
      scope: 'openid',
      claims: essentialMfa,
      max_age: '1',
    });
    const poll = oidc.pollDeviceAuthorizationGrant(config, da);
    poll.catch(() => {});
    await expect(
      completeDeviceLogin(da.verification_uri_complete!, alice, { mfa: false }),
    ).rejects.toThrow(/This step needs your one-time code/);
  });

  it('re-authenticates an existing browser session: max_age with essential mfa', async () => {
    const { CookieJar } = await import('../../support/dev-browser.js');
    const jar = new CookieJar();
    const first = await deviceTokens(alice, {}, { mfa: false, jar });
    expect(first.claims()!.acr).toBe('pwd');
    // Same browser, already signed in: without step-up no form is shown at all.
    const again = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const againPoll = oidc.pollDeviceAuthorizationGrant(config, again);
    const quiet = await completeDeviceLogin(again.verification_uri_complete!, alice, { jar });
    expect(quiet.signedIn).toBe(false);
    expect((await againPoll).claims()!.acr).toBe('pwd');

    await new Promise((r) => setTimeout(r, 1_100));
    const stepped = await deviceTokens(
      alice,
      { claims: essentialMfa, max_age: '1' },
      { mfa: true, jar },
    );
    const claims = stepped.claims()!;
    expect(claims.acr).toBe('mfa');
    expect(claims.auth_time).toBeGreaterThan(first.claims()!.auth_time!);
  });

  it('an acr it cannot reach ends the sign-in with unmet_authentication_requirements', async () => {
    const claims = JSON.stringify({
      id_token: { acr: { essential: true, values: ['urn:hardware-key'] } },
    });
    const da = await oidc.initiateDeviceAuthorization(config, { scope: 'openid', claims });
    const poll = oidc.pollDeviceAuthorizationGrant(config, da);
    poll.catch(() => {});
    await completeDeviceLogin(da.verification_uri_complete!, alice, { mfa: true }).catch(() => {});
    await expect(poll).rejects.toMatchObject({ error: 'unmet_authentication_requirements' });
  });
});

describe('device authorization (RFC 8628)', () => {
  it('answers with an interval, and slow_down to a client that polls too fast', async () => {
    const r = await request(`${b.idp.issuer}/device/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'client_id=jitctl&scope=openid',
    });
    const da = (await r.body.json()) as {
      device_code: string;
      interval: number;
      expires_in: number;
    };
    expect(da.interval).toBe(1);
    expect(da.expires_in).toBe(600);
    const poll = async () => {
      const t = await request(`${b.idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          client_id: 'jitctl',
          grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
          device_code: da.device_code,
        }).toString(),
      });
      return ((await t.body.json()) as { error: string }).error;
    };
    // Immediately after issuing: too fast.
    expect(await poll()).toBe('slow_down');
    expect(await poll()).toBe('slow_down');
    await new Promise((r2) => setTimeout(r2, 1_100));
    expect(await poll()).toBe('authorization_pending');
  });

  it('reports sign-ins without secrets: a password typed as the username is not repeated', async () => {
    const da = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    oidc.pollDeviceAuthorizationGrant(config, da).catch(() => {});
    await expect(
      completeDeviceLogin(da.verification_uri_complete!, {
        username: alice.password,
        password: 'x',
      }),
    ).rejects.toThrow(/Wrong username or password/);
    expect(b.events).toContainEqual({
      type: 'sign_in',
      outcome: 'failure',
      username: '(unknown user)',
      reason: 'wrong username or password',
    });
    expect(JSON.stringify(b.events)).not.toContain(alice.password);
  });

  it('a wrong user code is refused on the page', async () => {
    await expect(
      completeDeviceLogin(`${b.idp.issuer}/device?user_code=BCDF-GHJK`, alice),
    ).rejects.toThrow(/not valid/);
  });
});

describe('authorization code + PKCE with loopback redirects (RFC 8252)', () => {
  async function authorize(params: Record<string, string>) {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(config, {
      scope: 'openid groups',
      state: 's',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...params,
    });
    return { url, verifier };
  }

  it('accepts any port on 127.0.0.1 and issues tokens for the code', async () => {
    const listener = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    const port = (listener.address() as { port: number }).port;
    try {
      const nonce = oidc.randomNonce();
      const { url, verifier } = await authorize({
        redirect_uri: `http://127.0.0.1:${port}/callback`,
        nonce,
      });
      let callback: URL | undefined;
      await completeAuthorizationRequest(url.href, alice, {
        mfa: false,
        rewriteCallback: (u) => {
          callback = u;
          return u;
        },
      });
      expect(callback!.searchParams.get('iss')).toBe(b.idp.issuer);
      const tokens = await oidc.authorizationCodeGrant(config, callback!, {
        pkceCodeVerifier: verifier,
        expectedState: 's',
        expectedNonce: nonce,
      });
      expect(tokens.claims()).toMatchObject({ sub: 'alice', groups: ['developers'], nonce });
      expect(tokens.refresh_token).toBeTruthy();
    } finally {
      listener.close();
    }
  });

  it('refuses redirect URIs that are not the loopback callback, and requests without PKCE', async () => {
    for (const redirect of [
      'http://evil.example.com/callback',
      'http://127.0.0.1:5555/elsewhere',
      'https://127.0.0.1/callback',
    ]) {
      const { url } = await authorize({ redirect_uri: redirect });
      const r = await request(url);
      expect(r.statusCode).toBe(400);
      expect(await r.body.text()).toContain('redirect_uri');
    }
    const noPkce = new URL(`${b.idp.issuer}/auth`);
    noPkce.search = new URLSearchParams({
      client_id: 'jitctl',
      response_type: 'code',
      scope: 'openid',
      redirect_uri: 'http://127.0.0.1:5555/callback',
    }).toString();
    const r = await request(noPkce);
    expect(r.statusCode).toBe(303);
    expect(String(r.headers.location)).toContain('requires+PKCE');
  });
});

describe('pages', () => {
  it('escape everything they render (a hostile login_hint stays text)', async () => {
    const { url } = await (async () => {
      const verifier = oidc.randomPKCECodeVerifier();
      return {
        url: oidc.buildAuthorizationUrl(config, {
          scope: 'openid',
          redirect_uri: 'http://127.0.0.1:5555/callback',
          code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          login_hint: '"><script>alert(1)</script>',
        }),
      };
    })();
    const jar = new (await import('../../support/dev-browser.js')).CookieJar();
    let r = await request(url, { headers: {} });
    jar.store(url, r.headers['set-cookie']);
    await r.body.dump();
    const next = new URL(String(r.headers.location), url);
    r = await request(next, { headers: { cookie: jar.header(next) } });
    const body = await r.body.text();
    expect(r.statusCode).toBe(200);
    expect(body).toContain('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(body).not.toContain('<script>');
    expect(r.headers['content-security-policy']).toContain("default-src 'none'");
    expect(r.headers['x-frame-options']).toBe('DENY');
  });

  it('html() escapes the five characters that matter in text and attributes', () => {
    expect(html(`<a href="x" onclick='y'>&\``)).toBe(
      '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&#96;',
    );
  });
});

describe('the provider process', () => {
  it('refuses a non-loopback address unless told otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-idp-'));
    try {
      await expect(
        createDevIdentityProvider({ baseUrl: 'http://10.1.2.3:8787', dataDir: dir }),
      ).rejects.toThrow(/only listens on loopback addresses/);
      await expect(
        createDevIdentityProvider({ baseUrl: 'https://jit.example.com', dataDir: dir }),
      ).rejects.toThrow(/refusing to start/);
      const ok = await createDevIdentityProvider({
        baseUrl: 'https://jit.example.com',
        dataDir: dir,
        allowNonLoopback: true,
      });
      expect(ok.issuer).toBe('https://jit.example.com/idp');
      await ok.close();
      expect(issuerFor('http://[::1]:8787/')).toBe('http://[::1]:8787/idp');
      expect(issuerFor('http://localhost:1')).toBe('http://localhost:1/idp');
      expect(() => issuerFor('not a url')).toThrow(/needs the broker's URL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps its keys in the data directory (0600 in 0700) and reuses them', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'jitctl-idp-')), 'data');
    try {
      const one = await createDevIdentityProvider({ baseUrl: 'http://127.0.0.1:1', dataDir: dir });
      await one.close();
      const file = join(dir, KEYS_FILE);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const keys = readFileSync(file, 'utf8');
      const two = await createDevIdentityProvider({ baseUrl: 'http://127.0.0.1:1', dataDir: dir });
      await two.close();
      expect(readFileSync(file, 'utf8')).toBe(keys);
      writeFileSync(file, '{"v":1}');
      await expect(
        createDevIdentityProvider({ baseUrl: 'http://127.0.0.1:1', dataDir: dir }),
      ).rejects.toThrow(/delete it to create new ones/);
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });

  it('files browser sessions and refresh tokens under their SHA-256, never in clear, and keeps them across a restart', async () => {
    const { CookieJar } = await import('../../support/dev-browser.js');
    const own = await startStandInBroker({ devicePollInterval: 1 });
    try {
      const rp = await oidc.discovery(new URL(own.idp.issuer), 'jitctl', undefined, oidc.None(), {
        execute: [oidc.allowInsecureRequests],
      });
      const jar = new CookieJar();
      const signIn = async () => {
        const da = await oidc.initiateDeviceAuthorization(rp, { scope: own.idp.scopes.join(' ') });
        const poll = oidc.pollDeviceAuthorizationGrant(rp, da);
        const page = await completeDeviceLogin(da.verification_uri_complete!, alice, { jar });
        return { page, tokens: await poll };
      };
      const first = await signIn();
      expect(first.page.signedIn).toBe(true);
      await own.restart();
      const state = readFileSync(join(own.dataDir, STATE_FILE), 'utf8');
      const secrets = [...jar.values(), first.tokens.refresh_token!].filter((v) => v.length >= 16);
      expect(secrets.length).toBeGreaterThanOrEqual(2);
      for (const secret of secrets) expect(state).not.toContain(secret);
      const saved = JSON.parse(state) as {
        models: Record<string, Record<string, { payload: Record<string, unknown> }>>;
      };
      for (const model of ['Session', 'RefreshToken']) {
        const entries = Object.entries(saved.models[model] ?? {});
        expect(entries.length, model).toBeGreaterThan(0);
        for (const [key, entry] of entries) {
          expect(key).toMatch(/^sha256:[\w-]{43}$/);
          expect(entry.payload).not.toHaveProperty('jti');
        }
      }
      // After the restart the same browser is still signed in: no form, straight through.
      const again = await signIn();
      expect(again.page.signedIn).toBe(false);
      expect(again.tokens.claims()!.sub).toBe(first.tokens.claims()!.sub);
    } finally {
      await own.stop();
    }
  });

  it('rejects nonsense settings with the setting named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-idp-'));
    try {
      await expect(
        createDevIdentityProvider({
          baseUrl: 'http://127.0.0.1:1',
          dataDir: dir,
          env: { JITCTL_DEV_IDP_INTERVAL: 'soon' },
        }),
      ).rejects.toThrow(/JITCTL_DEV_IDP_INTERVAL must be a whole number of seconds/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('demo users and policy', () => {
  it('the demo people have working one-time codes and the groups the policy names', () => {
    expect(DEV_USERS.map((u) => [u.username, u.groups])).toEqual([
      ['alice', ['developers']],
      ['bob', ['developers']],
      ['lee', ['leads']],
      ['ada', ['auditors']],
    ]);
    for (const u of DEV_USERS) {
      expect(checkTotp(u, currentTotp(u))).toBe(true);
      expect(checkTotp(u, '12345')).toBe(false);
    }
  });

  it('the demo policy parses, and alice can ask for prod-deploy that lee approves', () => {
    const policy = parsePolicy(DEMO_POLICY, 'demo', { acrLevels: ['pwd', 'mfa'] });
    expect([...policy.roles.keys()]).toEqual(['prod-deploy', 'db-read', 'staging-admin']);
    expect(policy.roles.get('prod-deploy')!.stepUp).toEqual({ acr: 'mfa', maxAgeMs: 300_000 });
  });
});
