import { hostname, userInfo } from 'node:os';
import type { Identity } from '../../api/schemas.js';
import type { Context } from '../../cli/context.js';
import { JitError, UsageError } from '../../cli/errors.js';
import type { ConfigKey, ServerConfig } from '../../server/config.js';
import type { KeyStore } from '../../server/mint/key-store.js';
import type { KeyRecord } from '../../server/mint/keys.js';
import type { Db } from '../../server/store/database.js';

/**
 * What `jitctl server keys list|rotate|retire` share: the broker's own settings (the same flags,
 * JITCTL_SERVER_* variables and --config file as `jitctl server`, without the ones only serving
 * needs), its database (migrated, as a broker of this version would), and the key store that
 * `signing_key` names. They work on the database and the key file directly, like an operator's
 * tool should: no running broker, token or network is needed, and running brokers pick the
 * change up by themselves within seconds.
 */
export interface ServerKeysOptions {
  config?: string | undefined;
  db?: string | undefined;
  dev?: boolean | undefined;
  dataDir?: string | undefined;
  json?: boolean | undefined;
}

export interface OpenKeys {
  config: ServerConfig;
  db: Db;
  store: KeyStore;
  close(): Promise<void>;
}

export async function openKeys(options: ServerKeysOptions, ctx: Context): Promise<OpenKeys> {
  const [{ ConfigError, loadServerConfig }, database, { migrateToLatest }, { openKeyStore }] =
    await Promise.all([
      import('../../server/config.js'),
      import('../../server/store/database.js'),
      import('../../server/store/migrations.js'),
      import('../../server/mint/open-key-store.js'),
    ]);
  const flags: Partial<Record<ConfigKey, string | boolean>> = {};
  if (options.db !== undefined) flags.db = options.db;
  if (options.dev) flags.dev = true;
  if (options.dataDir !== undefined) flags.data_dir = options.dataDir;
  let config: ServerConfig;
  try {
    config = await loadServerConfig({
      flags,
      configFile: options.config,
      env: ctx.env,
      cwd: process.cwd(),
      purpose: 'keys',
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message, { hint: err.hint });
    throw err;
  }
  let db: Db;
  try {
    db = await database.openDatabase(database.parseDatabaseUrl(config.db));
  } catch (err) {
    throw new JitError(`cannot open the database: ${(err as Error).message}`, 1, {
      hint: 'give the broker’s database with --db, JITCTL_SERVER_DB or --config',
    });
  }
  try {
    await migrateToLatest(db.kysely, db.dialect);
    return { config, db, store: await openKeyStore(config, db), close: () => db.close() };
  } catch (err) {
    await db.close();
    if (database.isDatabaseError(err) || /migration/.test((err as Error).message))
      throw new JitError(
        `cannot use the database ${db.description}: ${(err as Error).message}`,
        1,
        {
          cause: err,
        },
      );
    throw err;
  }
}

/** Runs `fn` with the keys open, closing the database whatever happens; key errors as JitErrors. */
export async function withKeys<T>(
  options: ServerKeysOptions,
  ctx: Context,
  fn: (keys: OpenKeys) => Promise<T>,
): Promise<T> {
  const { SigningKeyError } = await import('../../server/mint/keys.js');
  const keys = await openKeys(options, ctx);
  try {
    return await fn(keys);
  } catch (err) {
    if (err instanceof SigningKeyError) throw new JitError(err.message, 1, { hint: err.hint });
    throw err;
  } finally {
    await keys.close();
  }
}

/**
 * The operator, as audit events name them: the local account and host (what `sudo` logs too).
 * Operators have no sign-in here; the database or key file access is what authorizes them.
 */
export function operator(command: string): Identity {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container with an arbitrary uid)
  }
  return { iss: 'urn:jitctl:operator', sub: `${user}@${hostname()}`, name: command };
}

/** What `list --json` and the other commands print per key: public facts, never key material. */
export function keyJson(r: KeyRecord, retirable: number | null) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    kid: r.kid,
    alg: r.alg,
    state: r.state,
    created_at: iso(r.createdAt),
    rotated_at: iso(r.rotatedAt),
    retired_at: iso(r.retiredAt),
    retirable_at: iso(retirable),
  };
}

export const isoMinute = (ms: number) => new Date(ms).toISOString().replace(/:\d\d\.\d{3}Z$/, 'Z');
