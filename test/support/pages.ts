import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { loadServerConfig } from '../../src/server/config.js';
import { DEV_USERS, type DevUser } from '../../src/server/dev/index.js';
import { type RunningBroker, startBroker } from '../../src/server/start.js';
import { type TestClock, testClock } from './broker.js';
import {
  CookieJar,
  completeAuthorizationRequest,
  openReviewPage,
  pageText,
} from './dev-browser.js';

/**
 * Helpers for tests of the broker's review pages over plain HTTP: an ID token for a demo person
 * from the development identity provider (the CLI's client, authorization code + PKCE through
 * its pages, as `jitctl login --browser` does), and a browser's GET and form POST with a cookie
 * jar (test/support/dev-browser.ts signs the person in at the pages).
 */

/** An ID token of the CLI's client for `person` (a real sign-in at the dev provider). */
export async function devIdToken(issuer: string, person: DevUser, mfa: boolean): Promise<string> {
  const callbacks: string[] = [];
  const server = createServer((req, res) => {
    callbacks.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (server.address() as AddressInfo).port;
    const config = await oidc.discovery(new URL(issuer), 'jitctl', undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const redirect = `http://127.0.0.1:${port}/callback`;
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirect,
      scope: 'openid profile email groups',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    await completeAuthorizationRequest(url.href, person, { mfa });
    const tokens = await oidc.authorizationCodeGrant(config, new URL(callbacks[0]!, redirect), {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
    return tokens.id_token!;
  } finally {
    server.close();
  }
}

export interface Loaded {
  status: number;
  location: string | undefined;
  html: string;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One request as the browser holding `jar` makes it (no redirects followed). */
export async function browse(
  jar: CookieJar,
  url: string,
  init: { form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<Loaded> {
  const u = new URL(url);
  const headers: Record<string, string> = { ...init.headers };
  const cookie = jar.header(u);
  if (cookie) headers.cookie = cookie;
  let body: string | undefined;
  if (init.form) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  }
  const res = await request(u, { method: init.form ? 'POST' : 'GET', headers, body });
  jar.store(u, res.headers['set-cookie']);
  const html = await res.body.text();
  const location = res.headers.location;
  return {
    status: res.statusCode,
    location: Array.isArray(location) ? location[0] : location,
    html,
    text: pageText(html),
    headers: res.headers,
  };
}

/** The CSRF token of the first form on a page. */
export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no CSRF token on the page:\n${pageText(html).slice(0, 500)}`);
  return m[1]!;
}

/** The fingerprint the review form carries. */
export function fingerprintOf(html: string): string {
  const m = /name="fingerprint" value="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no review form on the page:\n${pageText(html).slice(0, 500)}`);
  return m[1]!;
}

/** The review pages' test policy: step-up to request and review, a two-approval role. */
export const PAGES_POLICY = `
# The stories here leave several requests of one person pending at once.
max_pending: 20
roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}" }
  staging-admin:
    description: Administer the staging cluster
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 1h
    max_duration: 4h
    pending_ttl: 2h
    credential:
      audience: https://k8s.staging.example.com
  two-person:
    description: Production database writes, two leads must agree
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 2
    default_duration: 30m
    max_duration: 1h
    pending_ttl: 1h
    credential:
      audience: https://db.prod.example.com
  # ---- the lifecycle on the pages: extensions, break-glass, multi-party, rules ----
  db-console:
    description: Production database console
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 30m
    max_duration: 1h
    pending_ttl: 1h
    step_up: { acr: mfa, max_age: 5m }
    extend: { max_total: 1h, approvals: 1, require_reason: true }
    credential:
      audience: https://db.prod.example.com
  staging-debug:
    description: Debug the staging cluster
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 30m
    max_duration: 1h
    extend: { max_total: 2h, approvals: 1 }
    credential:
      audience: https://k8s.staging.example.com
  long-debug:
    description: Debug production, each extension needs two leads
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 30m
    max_duration: 1h
    extend: { max_total: 2h, approvals: 2 }
    credential:
      audience: https://k8s.prod.example.com
  prod-emergency:
    description: Production, in an emergency
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 30m
    max_duration: 1h
    step_up: { acr: mfa, max_age: 5m }
    break_glass: { review_within: 1m, max_per_week: 50 }
    credential:
      audience: https://k8s.prod.example.com
  prod-secrets:
    description: Production secrets, a lead and security together
    requesters: [group:developers]
    approvers: [group:leads, group:security]
    approvals: { group:leads: 1, group:security: 1 }
    require_review_comment: true
    default_duration: 15m
    max_duration: 1h
    credential:
      audience: https://secrets.prod.example.com
  ops-ticketed:
    description: Operations, decided by rule for some tickets
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    rules:
      - name: incident
        decision: approve
        ticket: "INC-[0-9]+"
      - name: no change tickets
        decision: deny
        ticket: "CHG-[0-9]+"
    credential:
      audience: https://ops.example.com
`;

/** A second lead, for two-approval roles (the demo users have one). */
export const KIM: DevUser = {
  username: 'kim',
  password: 'kim-dev-password',
  totpSecret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
  name: 'Kim Lead',
  email: 'kim@example.com',
  groups: ['leads'],
};

/** A security engineer, for multi-party roles (one from group:leads and one from group:security). */
export const SAM: DevUser = {
  username: 'sam',
  password: 'sam-dev-password',
  totpSecret: 'KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU',
  name: 'Sam Security',
  email: 'sam@example.com',
  groups: ['security'],
};

export interface PagesBroker {
  url: string;
  broker: RunningBroker;
  clock: TestClock;
  /** Everything the broker logged (JSON lines). */
  logs(): string;
  close(): Promise<void>;
}

/**
 * The real broker with --dev (its identity provider and the review pages' web client), in this
 * process on 127.0.0.1 port 0, with PAGES_POLICY, the demo users and Kim, a clock tests can move,
 * and a fresh SQLite file (or the PostgreSQL database `db` names, for replicas).
 */
export async function startPagesBroker(
  opts: { clock?: TestClock; db?: string; settings?: Record<string, string> } = {},
): Promise<PagesBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-pages-'));
  const clock = opts.clock ?? testClock();
  try {
    writeFileSync(join(dir, 'policy.yaml'), PAGES_POLICY);
    const config = await loadServerConfig({
      flags: {
        dev: true,
        listen: '127.0.0.1:0',
        data_dir: join(dir, 'data'),
        db: opts.db ?? `sqlite:${join(dir, 'jitctl.db')}`,
        policy: join(dir, 'policy.yaml'),
        log_level: 'info',
      },
      env: Object.fromEntries(
        Object.entries(opts.settings ?? {}).map(([k, v]) => [
          `JITCTL_SERVER_${k.toUpperCase()}`,
          v,
        ]),
      ),
      cwd: dir,
    });
    let logText = '';
    const logStream = new PassThrough();
    logStream.on('data', (c: Buffer) => {
      logText += c.toString();
    });
    const broker = await startBroker(config, {
      clock,
      logStream,
      devUsers: [...DEV_USERS, KIM, SAM],
      // The CLI's device sign-ins poll every second instead of every two.
      env: { JITCTL_DEV_IDP_INTERVAL: '1' },
    });
    return {
      url: broker.url,
      broker,
      clock,
      logs: () => logText,
      async close() {
        await broker.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Files a request through the API as `person` (a fresh MFA sign-in), returns its id. */
export async function fileRequest(
  b: PagesBroker,
  person: DevUser,
  body: {
    role: string;
    reason?: string;
    duration?: string;
    ticket?: string;
    starts_at?: string;
    break_glass?: boolean;
  },
): Promise<string> {
  const res = await callApi(b, person, 'POST', '/v1/requests', body);
  const doc = res.body as { id?: string };
  if (res.status !== 201 || !doc.id) throw new Error(`filing failed: ${JSON.stringify(doc)}`);
  return doc.id;
}

/** One call of the JSON API as `person`, with a fresh MFA sign-in (as the CLI would make it). */
export async function callApi(
  b: PagesBroker,
  person: DevUser,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const token = await devIdToken(b.broker.dev!.issuer, person, true);
  const res = await request(`${b.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: await res.body.json() };
}

/** The request's state straight from the database (what the broker would answer). */
export async function stateOf(b: PagesBroker, id: string): Promise<string> {
  const row = await b.broker.db.kysely
    .selectFrom('requests')
    .select('state')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return row.state;
}

/** A demo person of the development identity provider by user name. */
export function devUser(name: string): DevUser {
  const found = DEV_USERS.find((u) => u.username === name);
  if (!found) throw new Error(`no demo user ${name}`);
  return found;
}

/** Signs `person` in at the pages at `path` (with the one-time code unless `mfa: false`), on a fresh jar. */
export async function signInAt(b: PagesBroker, person: DevUser, path = '/ui/', mfa = true) {
  const jar = new CookieJar();
  const first = await openReviewPage(`${b.url}${path}`, person, { jar, mfa });
  return { jar, first };
}
