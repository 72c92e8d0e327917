import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  type Db,
  type Dialect,
  openDatabase,
  parseDatabaseUrl,
} from '../../src/server/store/database.js';
import { migrateToLatest } from '../../src/server/store/migrations.js';
import { freshPostgresDatabase } from './broker.js';

/**
 * A database of `dialect` with the broker's schema (SQLite: a file in a temporary directory;
 * PostgreSQL: a fresh database on the test run's server), and how to close and remove it.
 */
export async function migratedDatabase(
  dialect: Dialect,
): Promise<{ db: Db; cleanup: () => Promise<void> }> {
  let db: Db;
  let remove: () => Promise<void> | void;
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-db-'));
    db = await openDatabase({ dialect, location: join(dir, 'db.sqlite') });
    remove = () => rmSync(dir, { recursive: true, force: true });
  } else {
    const fresh = await freshPostgresDatabase();
    db = await openDatabase({ dialect, location: fresh.url });
    remove = fresh.drop;
  }
  await migrateToLatest(db.kysely, dialect);
  return {
    db,
    cleanup: async () => {
      await db.close();
      await remove();
    },
  };
}

/** A fresh PostgreSQL database with the broker's schema, and a client connected to it. */
export async function migratedPostgres(): Promise<{
  url: string;
  client: pg.Client;
  close: () => Promise<void>;
}> {
  const fresh = await freshPostgresDatabase();
  const handle = await openDatabase(parseDatabaseUrl(fresh.url));
  await migrateToLatest(handle.kysely, handle.dialect);
  await handle.close();
  const client = new pg.Client({ connectionString: fresh.url });
  await client.connect();
  return {
    url: fresh.url,
    client,
    close: async () => {
      await client.end();
      await fresh.drop();
    },
  };
}
