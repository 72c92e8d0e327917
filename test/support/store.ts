import type { Insertable } from 'kysely';
import { type Db, openDatabase, parseDatabaseUrl } from '../../src/server/store/database.js';
import { migrateToLatest } from '../../src/server/store/migrations.js';
import type { RequestsTable } from '../../src/server/store/schema.js';
import { freshPostgresDatabase } from './broker.js';

/** A migrated, empty broker database: SQLite in memory, or a new database on the test cluster. */
export async function migratedDatabase(
  dialect: 'sqlite' | 'postgres',
): Promise<{ db: Db; close(): Promise<void> }> {
  const fresh = dialect === 'postgres' ? await freshPostgresDatabase() : undefined;
  const db = await openDatabase(parseDatabaseUrl(fresh?.url ?? 'sqlite::memory:'));
  await migrateToLatest(db.kysely, db.dialect);
  return {
    db,
    async close() {
      await db.close();
      await fresh?.drop();
    },
  };
}

/** A stored request row with every column set; tests override what they look at. */
export function requestRow(
  over: Pick<Insertable<RequestsTable>, 'id'> & Partial<Insertable<RequestsTable>>,
): Insertable<RequestsTable> {
  return {
    role: 'r',
    state: 'pending',
    requester_iss: 'https://idp',
    requester_sub: 'alice',
    requester_name: null,
    duration_ms: 60_000,
    reason: null,
    ticket: null,
    created_at: 1,
    expires_at: 2,
    approved_at: null,
    ended_at: null,
    approvals_required: 1,
    denials_required: 1,
    approvers: '[]',
    fingerprint: 'f',
    review_count: 0,
    idempotency_key: null,
    idempotency_hash: null,
    ...over,
  };
}
