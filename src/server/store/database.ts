import { dirname, resolve } from 'node:path';
import type SqliteDatabase from 'better-sqlite3';
import { Kysely, type SqliteDatabase as SqliteDialectDatabase, sql } from 'kysely';
import { createPrivateFile, makePrivateDir, refuseSharedFiles } from '../private-files.js';
import type { Database } from './schema.js';
import { lockSqliteFile, type SqliteLock } from './sqlite-lock.js';

/**
 * Opening the broker's database from a URL: `sqlite:PATH` (better-sqlite3, WAL) or
 * `postgres://…` (pg pool). Both dialects run the same migrations and queries; the differences
 * live here: how a write transaction starts, and how rows are locked.
 */
export type Dialect = 'sqlite' | 'postgres';

export interface DbTarget {
  dialect: Dialect;
  /** SQLite: the absolute file path (or `:memory:`). PostgreSQL: the connection string. */
  location: string;
}

export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError';
}

/** Parses `sqlite:PATH`, `sqlite://PATH`, `postgres://…` or `postgresql://…`. */
export function parseDatabaseUrl(url: string, baseDir: string = process.cwd()): DbTarget {
  if (/^postgres(ql)?:\/\//i.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new DatabaseUrlError(`${redactDatabaseUrl(url)} is not a valid PostgreSQL URL`);
    }
    return { dialect: 'postgres', location: url };
  }
  const m = /^sqlite:(?:\/\/)?(.+)$/i.exec(url);
  if (m) {
    const path = m[1]!;
    if (path === ':memory:') return { dialect: 'sqlite', location: ':memory:' };
    return { dialect: 'sqlite', location: resolve(baseDir, path) };
  }
  throw new DatabaseUrlError(
    `${JSON.stringify(redactDatabaseUrl(url))} is not a database URL: use sqlite:PATH or postgres://user@host/db`,
  );
}

/** The URL with any password replaced, for logs and messages. */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, '$1[REDACTED]@');
}

export type SqliteHandle = SqliteDatabase.Database;

export interface Db {
  readonly dialect: Dialect;
  readonly kysely: Kysely<Database>;
  /** Where the data lives, password removed (for logs). */
  readonly description: string;
  /**
   * Runs `fn` in one write transaction on one connection. SQLite: `BEGIN IMMEDIATE`, so a second
   * process writing the same file waits (busy timeout) instead of failing at commit. PostgreSQL:
   * READ COMMITTED, with rows locked explicitly by the queries (`SELECT … FOR UPDATE`).
   */
  transaction<T>(fn: (tx: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Calls `fn` after each transaction of this process commits (never inside one, never for a
   * rollback): audit long polls and sinks wake on it instead of polling. Returns the remover.
   */
  onCommit(fn: () => void): () => void;
  /** A dedicated connection string for LISTEN (PostgreSQL only). */
  readonly postgresUrl: string | undefined;
  /**
   * The better-sqlite3 handle (SQLite only), for bulk reads that kysely's row objects make slow:
   * `audit verify` iterates a million rows as arrays.
   */
  readonly sqlite: SqliteHandle | undefined;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Open SQLite read-only (audit verify): never creates or changes the file. */
  readonly?: boolean;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /**
   * PostgreSQL: told when a connection dies (terminated, restarted, network), whether it was idle
   * or serving a query. The query in flight fails on its own (a 503); this is for the log.
   */
  onConnectionError?: (err: Error) => void;
  /**
   * SQLite: hold the one-broker lock (sqlite-file.ts) for as long as the database is open, so a
   * second broker on the same file is refused instead of starting silently.
   */
  lock?: boolean;
}

export async function openDatabase(target: DbTarget, opts: OpenOptions = {}): Promise<Db> {
  return target.dialect === 'sqlite'
    ? openSqlite(target.location, opts)
    : openPostgres(target, opts);
}

async function openSqlite(path: string, opts: OpenOptions): Promise<Db> {
  const [{ default: BetterSqlite }, { SqliteDialect }] = await Promise.all([
    import('better-sqlite3'),
    import('kysely'),
  ]);
  let lock: SqliteLock | undefined;
  if (path !== ':memory:' && !opts.readonly) {
    // The file holds the credential signing key (signing_key: db) and the audit log: private.
    makePrivateDir(dirname(path));
    refuseSharedFiles(
      [path, `${path}-wal`, `${path}-shm`],
      'the credential signing key and the audit log',
    );
    if (opts.lock) lock = lockSqliteFile(path, BetterSqlite);
    // SQLite creates -wal, -shm and journals with the main file's mode, so 0600 here covers them.
    try {
      createPrivateFile(path);
    } catch (err) {
      lock?.release();
      throw new DatabaseUrlError(
        `cannot create SQLite database ${path}: ${(err as Error).message}`,
      );
    }
  }
  let raw: InstanceType<typeof BetterSqlite>;
  try {
    raw = new BetterSqlite(path, {
      readonly: opts.readonly === true,
      fileMustExist: opts.readonly === true,
    });
  } catch (err) {
    lock?.release();
    throw new DatabaseUrlError(`cannot open SQLite database ${path}: ${(err as Error).message}`);
  }
  if (!opts.readonly) {
    // WAL: readers (audit verify, /readyz) never block the writer. synchronous=NORMAL is the
    // documented WAL pairing: a power cut may lose the last commits, never corrupt the file, and
    // a change and its audit event are lost together (docs/operations.md "Backups").
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
  }
  raw.pragma('busy_timeout = 5000');
  const kysely = new Kysely<Database>({
    dialect: new SqliteDialect({ database: withStatementCache(raw) }),
  });
  const commits = new CommitListeners();
  return {
    dialect: 'sqlite',
    kysely,
    description: `sqlite:${path}`,
    postgresUrl: undefined,
    sqlite: raw,
    transaction: (fn) => runTransaction(kysely, 'begin immediate', fn, commits),
    onCommit: (fn) => commits.add(fn),
    async close() {
      await kysely.destroy();
      if (raw.open) raw.close();
      lock?.release();
    },
  };
}

/**
 * kysely's SQLite driver prepares every statement on every execution; preparing costs about as
 * much as running a small query. The broker runs a handful of distinct statements, so a bounded
 * cache by SQL text removes that cost. Safe because kysely runs one statement at a time on this
 * single connection, and a cached statement is never used by two queries at once.
 */
function withStatementCache(raw: SqliteHandle, size = 256): SqliteDialectDatabase {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => raw.close(),
    prepare(sqlText: string) {
      let stmt = cache.get(sqlText);
      if (stmt) {
        cache.delete(sqlText);
      } else {
        stmt = raw.prepare(sqlText);
        if (cache.size >= size) cache.delete(cache.keys().next().value!);
      }
      cache.set(sqlText, stmt);
      return stmt;
    },
  };
}

async function openPostgres(target: DbTarget, opts: OpenOptions): Promise<Db> {
  const [{ default: pg }, { PostgresDialect }] = await Promise.all([
    import('pg'),
    import('kysely'),
  ]);
  const int8 = 20;
  const pool = new pg.Pool({
    connectionString: target.location,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    // int8 columns hold milliseconds and sequence numbers, all far below 2^53.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === int8
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // pg emits 'error' on a client whose connection dies (pg_terminate_backend, a restart, a
  // failover). The pool listens only while a client is idle; a checked-out client has no listener,
  // and an unhandled 'error' event ends the process. So every client gets one for its whole life:
  // the query in flight still fails (the caller answers 503) and pg-pool discards the dead client
  // when it is released, so the next query opens a new connection.
  const report = opts.onConnectionError ?? (() => {});
  pool.on('connect', (client) => client.on('error', report));
  // The pool re-emits an idle client's error here; the listener above has already reported it.
  pool.on('error', () => {});
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const commits = new CommitListeners();
  return {
    dialect: 'postgres',
    kysely,
    description: redactDatabaseUrl(target.location),
    postgresUrl: target.location,
    sqlite: undefined,
    transaction: (fn) => runTransaction(kysely, 'begin', fn, commits),
    onCommit: (fn) => commits.add(fn),
    async close() {
      await kysely.destroy();
    },
  };
}

/** What {@link Db.onCommit} registers; a listener that throws never affects the committer. */
class CommitListeners {
  readonly #fns = new Set<() => void>();
  add(fn: () => void): () => void {
    this.#fns.add(fn);
    return () => this.#fns.delete(fn);
  }
  fire(): void {
    for (const fn of this.#fns) {
      try {
        fn();
      } catch {}
    }
  }
}

async function runTransaction<T>(
  kysely: Kysely<Database>,
  begin: string,
  fn: (tx: Kysely<Database>) => Promise<T>,
  commits: CommitListeners,
): Promise<T> {
  const committed = await kysely.connection().execute(async (conn) => {
    await sql.raw(begin).execute(conn);
    let result: T;
    try {
      result = await fn(conn);
    } catch (err) {
      try {
        await sql.raw('rollback').execute(conn);
      } catch {
        // the connection is gone; the server rolls back on its own
      }
      throw err;
    }
    await sql.raw('commit').execute(conn);
    return result;
  });
  commits.fire();
  return committed;
}

/** Socket errors of a database that cannot be reached (down, restarting, unroutable, no DNS). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
/**
 * SQLSTATEs of a server that is there but cannot serve us now: connection exceptions (class 08),
 * shutting down or crashed (57P01, 57P02), starting up or in recovery (57P03), out of
 * connections (53300).
 */
const UNAVAILABLE_STATES = /^(08...|57P0[1-3]|53300)$/;
/** pg's own messages for a connection that died or never came. */
const LOST_CONNECTION =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i;

/**
 * Whether `err` says the database cannot be reached right now, as opposed to refusing what we
 * asked (bad password, missing database, a constraint): worth waiting for at start-up, and a 503
 * rather than a 500 at any time.
 */
export function isDatabaseUnreachable(err: unknown, depth = 0): boolean {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown; cause?: unknown } | null;
  if (!e || typeof e !== 'object' || depth > 4) return false;
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || UNAVAILABLE_STATES.test(e.code)))
    return true;
  if (typeof e.message === 'string' && LOST_CONNECTION.test(e.message)) return true;
  // Node reports a host name with several addresses, all refusing, as an AggregateError; a
  // failed migration carries the database's error as its cause.
  if (Array.isArray(e.errors) && e.errors.some((x) => isDatabaseUnreachable(x, depth + 1)))
    return true;
  return isDatabaseUnreachable(e.cause, depth + 1);
}

/**
 * Whether an error came from the database (unreachable, locked, constraint, trigger) rather than
 * from our code: the broker answers those with 503 and the change did not happen.
 */
export function isDatabaseError(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown; severity?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'SqliteError') return true;
  // pg's DatabaseError carries a SQLSTATE code and a severity.
  if (typeof e.severity === 'string' && typeof e.code === 'string') return true;
  if (isDatabaseUnreachable(err)) return true;
  return (
    typeof e.message === 'string' &&
    /The database connection is not open|driver has already been destroyed/i.test(e.message)
  );
}

/** A unique constraint refused the row (two creates with one Idempotency-Key racing). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === '23505' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  );
}
