import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { inject } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { encodeSession, sessionKey } from '../../src/credentials/records.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import { type ConfigKey, loadServerConfig, type ServerConfig } from '../../src/server/config.js';
import { type RunningBroker, type StartOptions, startBroker } from '../../src/server/start.js';
import { type Person, startTestIssuer, type TestIssuer } from './test-issuer.js';

/**
 * A real broker for tests, in-process on 127.0.0.1 port 0, with a real test issuer, a policy
 * written to a file, and either a fresh SQLite file or a fresh PostgreSQL database on the run's
 * server (one per broker, dropped at close). Time can be moved forward with `clock.advance`.
 */

export type Dialect = 'sqlite' | 'postgres';

export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

export function testClock(): TestClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms;
    },
  };
}

export interface TestBroker {
  url: string;
  broker: RunningBroker;
  issuer: TestIssuer;
  clock: TestClock;
  config: ServerConfig;
  dbUrl: string;
  /** Everything the broker logged (JSON lines). */
  logs(): string;
  close(): Promise<void>;
}

export interface TestBrokerOptions {
  policy: string;
  dialect?: Dialect;
  /** Config keys as flags/strings (e.g. { admins: 'admins', review_step_up: 'none' }). */
  settings?: Partial<Record<ConfigKey, string>>;
  start?: StartOptions;
  /** Reuse a database (a second replica): its URL from another TestBroker. */
  dbUrl?: string;
  /** Reuse an issuer (several brokers trusting one identity provider). */
  issuer?: TestIssuer;
  clock?: TestClock;
}

/** A fresh, empty PostgreSQL database on the test run's server; returns its URL and a dropper. */
export async function freshPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const base = inject('pgUrl');
  const name = `jitctl_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function startTestBroker(opts: TestBrokerOptions): Promise<TestBroker> {
  const clock = opts.clock ?? testClock();
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-broker-'));
  const issuer = opts.issuer ?? (await startTestIssuer({ now: clock.now }));
  const ownsIssuer = !opts.issuer;
  let dbUrl = opts.dbUrl;
  let drop: (() => Promise<void>) | undefined;
  if (!dbUrl) {
    if (opts.dialect === 'postgres') {
      const fresh = await freshPostgresDatabase();
      dbUrl = fresh.url;
      drop = fresh.drop;
    } else {
      dbUrl = `sqlite:${join(dir, 'jitctl.db')}`;
    }
  }
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy);
  const config = await loadServerConfig({
    flags: {
      listen: '127.0.0.1:0',
      db: dbUrl,
      policy: policyFile,
      oidc_issuer: issuer.issuer,
      oidc_client_id: issuer.clientId,
      log_level: 'info',
      ...opts.settings,
    },
    env: {},
    cwd: dir,
  });
  let logText = '';
  const logStream = new PassThrough();
  logStream.on('data', (c: Buffer) => {
    logText += c.toString();
  });
  const broker = await startBroker(config, { clock, logStream, ...opts.start });
  return {
    url: broker.url,
    broker,
    issuer,
    clock,
    config,
    dbUrl,
    logs: () => logText,
    async close() {
      await broker.close();
      if (ownsIssuer) await issuer.close();
      await drop?.();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Signs `person` in to `broker` for the CLI: the session `jitctl login` would leave in `store`
 * (an ID token from the broker's test issuer, fresh MFA, valid for an hour, no refresh token).
 */
export async function storeSession(
  store: CredentialStore,
  broker: TestBroker,
  person: Person,
): Promise<void> {
  const now = Date.now();
  await store.set(
    sessionKey(broker.url),
    encodeSession({
      kind: 'oidc',
      issuer: broker.issuer.issuer,
      clientId: broker.issuer.clientId,
      bearer: new Secret(await broker.issuer.token(person)),
      refreshToken: null,
      expiresAt: now + 3_600_000,
      identity: {
        iss: broker.issuer.issuer,
        sub: person.sub,
        name: person.name ?? null,
        email: person.email ?? null,
        groups: person.groups ?? [],
      },
      acr: 'mfa',
      authTime: now,
    }),
  );
}

export interface HttpResult<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: T;
}

/** One HTTP call with undici, JSON in and out; never throws for an HTTP status. */
export async function http<T = unknown>(
  base: string,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  opts: {
    token?: string;
    body?: unknown;
    raw?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | Buffer | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await request(base + path, {
    method,
    headers,
    body,
    headersTimeout: 90_000,
    bodyTimeout: 90_000,
  });
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, body: parsed as T };
}

/**
 * Runs raw SQL against a test broker's database from outside the broker (as an operator, or an
 * attacker with database access, would): SQLite through its own connection, PostgreSQL through
 * its own client.
 */
export async function rawSql(dbUrl: string, statements: string): Promise<unknown[]> {
  if (dbUrl.startsWith('sqlite:')) {
    const { default: Sqlite } = await import('better-sqlite3');
    const db = new Sqlite(dbUrl.slice('sqlite:'.length));
    try {
      db.pragma('busy_timeout = 5000');
      const trimmed = statements.trim();
      if (/^select/i.test(trimmed)) return db.prepare(trimmed).all();
      db.exec(trimmed);
      return [];
    } finally {
      db.close();
    }
  }
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const r = await c.query(statements);
    return Array.isArray(r) ? [] : r.rows;
  } finally {
    await c.end();
  }
}
