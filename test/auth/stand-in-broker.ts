import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { formatStepUpChallenge } from '../../src/api/step-up.js';
import {
  createDevIdentityProvider,
  type DevIdentityProvider,
  type DevIdentityProviderOptions,
  type DevIdpEvent,
} from '../../src/server/dev/index.js';

/**
 * The real development identity provider, mounted under `/idp` of a plain HTTP server on
 * 127.0.0.1 port 0 exactly as the broker mounts it, beside the two broker routes that signing in
 * needs: `GET /v1/config`, and `GET /v1/me` which verifies the bearer ID token (jose, the
 * provider's JWKS, RS256 pinned, iss, aud, exp) and answers an RFC 9470 challenge when
 * `requireAcr` is set. The auth tests use it where the provider's settings must be changed
 * (intervals, lifetimes, throttling) or its traffic observed; the end-to-end tests run the real
 * `jitctl server --dev`.
 */
export interface StandInBroker {
  url: string;
  idp: DevIdentityProvider;
  events: DevIdpEvent[];
  /** The same events with the time each happened (ms since epoch). */
  timeline: Array<{ at: number; event: DevIdpEvent }>;
  /** Every request line that reached the server (method and path, no query). */
  requests: string[];
  /** What `/v1/me` demands; change it between calls. */
  requireAcr: { acr: string; maxAgeSeconds: number } | undefined;
  stop(): Promise<void>;
  /** Starts again on the same port and data directory (a restart). */
  restart(): Promise<void>;
  dataDir: string;
}

export async function startStandInBroker(
  opts: Omit<DevIdentityProviderOptions, 'baseUrl' | 'dataDir'> & { dataDir?: string } = {},
): Promise<StandInBroker> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'jitctl-idp-'));
  const ownDir = opts.dataDir === undefined;
  const events: DevIdpEvent[] = [];
  const timeline: Array<{ at: number; event: DevIdpEvent }> = [];
  const requests: string[] = [];
  let server: Server;
  let idp: DevIdentityProvider;
  let port = 0;

  const json = (res: ServerResponse, status: number, body: unknown, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  const self: StandInBroker = {
    url: '',
    idp: undefined as unknown as DevIdentityProvider,
    events,
    timeline,
    requests,
    requireAcr: undefined,
    dataDir,
    async stop() {
      await halt();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await halt();
      await start(port);
    },
  };

  async function halt() {
    await idp.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    requests.push(`${req.method} ${path}`);
    if (path === '/idp' || path.startsWith('/idp/')) {
      idp.handle(req, res);
      return;
    }
    if (path === '/v1/config') {
      json(res, 200, {
        issuer: idp.issuer,
        client_id: idp.clientId,
        scopes: idp.scopes,
        device_flow: true,
        version: 'stand-in',
      });
      return;
    }
    if (path === '/v1/me') {
      const auth = req.headers.authorization ?? '';
      const token = /^Bearer (.+)$/.exec(auth)?.[1];
      if (!token) {
        json(res, 401, { error: { code: 'unauthenticated', message: 'no token' } });
        return;
      }
      try {
        const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
        const { payload } = await jwtVerify(token, jwks, {
          issuer: idp.issuer,
          audience: idp.clientId,
          algorithms: ['RS256'],
          requiredClaims: ['exp', 'sub'],
        });
        const need = self.requireAcr;
        const fresh =
          need === undefined ||
          (payload.acr === need.acr &&
            typeof payload.auth_time === 'number' &&
            Date.now() / 1000 - payload.auth_time <= need.maxAgeSeconds);
        if (!fresh && need) {
          json(
            res,
            401,
            {
              error: {
                code: 'insufficient_user_authentication',
                message: 'reading your profile needs a fresh MFA sign-in',
              },
            },
            {
              'www-authenticate': formatStepUpChallenge({
                acrValues: need.acr,
                maxAge: need.maxAgeSeconds,
              }),
            },
          );
          return;
        }
        json(res, 200, {
          iss: payload.iss,
          sub: payload.sub,
          name: payload.name ?? null,
          email: payload.email ?? null,
          groups: payload.groups ?? [],
          requestable: [],
          reviewable: [],
          auditor: false,
          acr: payload.acr,
        });
      } catch (err) {
        json(res, 401, { error: { code: 'unauthenticated', message: (err as Error).message } });
      }
      return;
    }
    json(res, 404, { error: { code: 'not_found', message: 'not found' } });
  }

  async function start(listenPort: number) {
    server = createServer((req, res) => {
      onRequest(req, res).catch((err) => {
        if (!res.headersSent) json(res, 500, { error: { code: 'internal', message: String(err) } });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    port = (server.address() as AddressInfo).port;
    self.url = `http://127.0.0.1:${port}`;
    idp = await createDevIdentityProvider({
      ...opts,
      baseUrl: self.url,
      dataDir,
      env: {},
      onEvent: (e) => {
        events.push(e);
        timeline.push({ at: Date.now(), event: e });
        opts.onEvent?.(e);
      },
    });
    self.idp = idp;
  }

  await start(0);
  return self;
}
