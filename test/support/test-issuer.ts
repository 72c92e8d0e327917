import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  base64url,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';

/**
 * A real OpenID issuer for tests: an HTTP server on 127.0.0.1 port 0 serving discovery and a
 * JWKS, minting ID tokens with whatever claims a test wants, including hostile ones. The broker
 * fetches its keys over HTTP exactly as it would from a production identity provider.
 */

export interface Person {
  sub: string;
  name?: string;
  email?: string;
  email_verified?: boolean;
  groups?: string[];
  /** Default `mfa`; null leaves the claim out. */
  acr?: string | null;
  /** Seconds since the epoch; default now; null leaves the claim out. */
  auth_time?: number | null;
}

export interface MintOptions {
  alg?: 'RS256' | 'ES256';
  /** Override the kid of the header (the key used is still chosen by `alg`). */
  kid?: string;
  typ?: string;
  aud?: string | string[];
  iss?: string;
  /** Seconds until exp (default 3600); negative for an expired token. */
  expiresIn?: number;
  noExp?: boolean;
  extra?: Record<string, unknown>;
}

export type HostileKind =
  | 'alg-none'
  | 'hs256-with-public-key'
  | 'unknown-kid'
  | 'wrong-key-known-kid'
  | 'wrong-iss'
  | 'wrong-aud'
  | 'expired'
  | 'no-exp'
  | 'tampered'
  | 'typ-credential'
  | 'not-a-jwt'
  /** `aud` holds the client and another audience, and there is no `azp` (OIDC Core §3.1.3.7). */
  | 'multi-aud-no-azp'
  /** Several audiences, `azp` naming another client. */
  | 'multi-aud-other-azp'
  /** Issued an hour from now. */
  | 'future-iat'
  /** Signed in an hour from now: would pass any step-up max_age until then. */
  | 'future-auth-time'
  /** The signature segment with base64 padding (`=`), the signature itself valid. */
  | 'padded-signature'
  /** The payload segment with padding, signed over exactly those characters (so it verifies). */
  | 'padded-payload'
  /** The signature's last character with non-zero unused bits: the same bytes, another string. */
  | 'non-canonical-signature'
  /** A `crit` header naming an extension (RFC 7515 §4.1.11), validly signed. */
  | 'crit-header';

export interface TestIssuer {
  issuer: string;
  clientId: string;
  /** An ID token for `person`. */
  token(person: Person, opts?: MintOptions): Promise<string>;
  /** A token built to be refused (`opts` as for token(), where the kind leaves them free). */
  hostile(kind: HostileKind, person: Person, opts?: MintOptions): Promise<string>;
  /**
   * Publishes a new RS256 key and signs with it from now on (an identity provider rotating keys).
   * With `publish: false` it signs with a key it has not published yet.
   */
  rotate(opts?: { publish?: boolean }): Promise<void>;
  /** Publishes keys created by rotate({ publish: false }). */
  publishPending(): void;
  /** How many times the JWKS was fetched. */
  jwksFetches(): number;
  /** While down, every endpoint answers 503 (an identity provider outage). */
  setDown(down: boolean): void;
  /** While failing, only the JWKS answers 500; discovery still works (a key endpoint outage). */
  failJwks(fail: boolean): void;
  close(): Promise<void>;
}

interface KeyPair {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(alg: 'RS256' | 'ES256', kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

export async function startTestIssuer(
  opts: { clientId?: string; now?: () => number } = {},
): Promise<TestIssuer> {
  const now = opts.now ?? (() => Date.now());
  const clientId = opts.clientId ?? 'jitctl-cli';
  let rsa = await keyPair('RS256', 'rs-1');
  const published: KeyPair[] = [];
  const pending: KeyPair[] = [];
  let generation = 1;
  const ec = await keyPair('ES256', 'es-1');
  const rogue = await keyPair('RS256', 'rogue');
  let fetches = 0;
  let down = false;
  let jwksFailing = false;
  let issuer = '';

  const server: Server = createServer((req, res) => {
    if (down) {
      res.writeHead(503).end('down');
      return;
    }
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer,
          jwks_uri: `${issuer}/jwks`,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          device_authorization_endpoint: `${issuer}/device`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256', 'ES256'],
        }),
      );
      return;
    }
    if (req.url === '/jwks') {
      fetches++;
      if (jwksFailing) {
        res.writeHead(500).end('key store unavailable');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [...published.map((k) => k.jwk), ec.jwk] }));
      return;
    }
    res.writeHead(404).end();
  });
  published.push(rsa);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claimsOf = (p: Person, o: MintOptions): JWTPayload => {
    const t = Math.floor(now() / 1000);
    const claims: JWTPayload = {
      iss: o.iss ?? issuer,
      sub: p.sub,
      aud: o.aud ?? clientId,
      iat: t,
      ...(o.noExp ? {} : { exp: t + (o.expiresIn ?? 3600) }),
      ...(p.name !== undefined ? { name: p.name } : {}),
      ...(p.email !== undefined ? { email: p.email } : {}),
      ...(p.email_verified !== undefined ? { email_verified: p.email_verified } : {}),
      groups: p.groups ?? [],
      ...(p.acr === null ? {} : { acr: p.acr ?? 'mfa' }),
      ...(p.auth_time === null ? {} : { auth_time: p.auth_time ?? t }),
      ...o.extra,
    };
    return claims;
  };

  const sign = async (claims: JWTPayload, key: KeyPair, header: Record<string, unknown>) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
      .sign(key.privateKey);

  const token = async (p: Person, o: MintOptions = {}) => {
    const key = o.alg === 'ES256' ? ec : rsa;
    return sign(claimsOf(p, o), key, {
      ...(o.kid ? { kid: o.kid } : {}),
      ...(o.typ ? { typ: o.typ } : {}),
    });
  };

  const hostile = async (kind: HostileKind, p: Person, o: MintOptions = {}): Promise<string> => {
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    const t = Math.floor(now() / 1000);
    switch (kind) {
      case 'multi-aud-no-azp':
        return token(p, { ...o, aud: [clientId, 'https://other.example.com'] });
      case 'multi-aud-other-azp':
        return token(p, {
          ...o,
          aud: [clientId, 'https://other.example.com'],
          extra: { ...o.extra, azp: 'another-client' },
        });
      case 'future-iat':
        return token(p, { ...o, extra: { ...o.extra, iat: t + 3600 } });
      case 'future-auth-time':
        return token({ ...p, auth_time: t + 3600 }, o);
      case 'padded-signature': {
        const jws = await token(p, o);
        const sig = jws.split('.')[2]!;
        return `${jws}${'='.repeat((4 - (sig.length % 4)) % 4 || 4)}`;
      }
      case 'padded-payload': {
        const h = enc({ alg: 'RS256', kid: rsa.kid });
        let payload = enc(claimsOf(p, o));
        payload += '='.repeat((4 - (payload.length % 4)) % 4 || 4);
        const input = new TextEncoder().encode(`${h}.${payload}`);
        const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, input);
        return `${h}.${payload}.${base64url.encode(new Uint8Array(sig))}`;
      }
      case 'non-canonical-signature': {
        const [h, payload, sig] = (await token(p, o)).split('.') as [string, string, string];
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const unused = [0, 0, 4, 2][sig.length % 4]!;
        if (unused === 0) throw new Error('this signature length has no unused bits');
        const last = alphabet.indexOf(sig.at(-1)!);
        return `${h}.${payload}.${sig.slice(0, -1)}${alphabet[last | 1]}`;
      }
      case 'crit-header':
        return new SignJWT(claimsOf(p, o))
          .setProtectedHeader({
            alg: rsa.alg,
            kid: rsa.kid,
            crit: ['urn:example:ext'],
            'urn:example:ext': true,
          })
          .sign(rsa.privateKey, { crit: { 'urn:example:ext': true } });
      case 'alg-none':
        return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claimsOf(p, {}))}.`;
      case 'hs256-with-public-key': {
        // The classic key-confusion attack: HMAC keyed with the issuer's public key (PEM bytes).
        const secret = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
        return new SignJWT(claimsOf(p, {}))
          .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
          .sign(secret);
      }
      case 'unknown-kid':
        return sign(claimsOf(p, {}), rogue, { kid: 'not-published' });
      case 'wrong-key-known-kid':
        return sign(claimsOf(p, {}), rogue, { kid: rsa.kid });
      case 'wrong-iss':
        return token(p, { iss: 'https://evil.example.com' });
      case 'wrong-aud':
        return token(p, { aud: 'some-other-client' });
      case 'expired':
        return token(p, { expiresIn: -3600 });
      case 'no-exp':
        return token(p, { noExp: true });
      case 'typ-credential':
        return token(p, { typ: 'jitctl-credential+jwt' });
      case 'tampered': {
        const [h, payload, s] = (await token(p)).split('.');
        const claims = JSON.parse(
          new TextDecoder().decode(base64url.decode(payload!)),
        ) as JWTPayload;
        claims.groups = ['leads', 'auditors', 'admins'];
        return `${h}.${enc(claims)}.${s}`;
      }
      case 'not-a-jwt':
        return 'this-is-not-a-jwt';
    }
  };

  return {
    issuer,
    clientId,
    token,
    hostile,
    async rotate(o = {}) {
      generation++;
      rsa = await keyPair('RS256', `rs-${generation}`);
      if (o.publish === false) pending.push(rsa);
      else published.push(rsa);
    },
    publishPending() {
      published.push(...pending.splice(0));
    },
    jwksFetches: () => fetches,
    setDown: (d) => {
      down = d;
    },
    failJwks: (f) => {
      jwksFailing = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
