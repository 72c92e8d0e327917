import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { GENESIS_HASH } from '../../api/audit-chain.js';
import type { Dialect } from './database.js';
import { laterMigrations } from './migrations-later.js';
import type { Database } from './schema.js';

/**
 * Schema migrations, run at every start (kysely's Migrator takes an advisory lock on PostgreSQL,
 * so replicas starting together run each migration once). They live in code rather than files so
 * the bundled CLI carries them. Never edit a shipped migration: add the next one.
 */
function migrations(dialect: Dialect): Record<string, Migration> {
  const bigint = 'bigint' as const;
  return {
    '0001-initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('requests')
          .addColumn('seq', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
            dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn('id', 'text', (c) => c.notNull().unique())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('requester_iss', 'text', (c) => c.notNull())
          .addColumn('requester_sub', 'text', (c) => c.notNull())
          .addColumn('requester_name', 'text')
          .addColumn('duration_ms', bigint, (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('ticket', 'text')
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .addColumn('approved_at', bigint)
          .addColumn('ended_at', bigint)
          .addColumn('approvals_required', 'integer', (c) => c.notNull())
          .addColumn('denials_required', 'integer', (c) => c.notNull())
          .addColumn('approvers', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('review_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('idempotency_key', 'text')
          .addColumn('idempotency_hash', 'text')
          .execute();
        // The filters of GET /v1/requests (state, mine, reviewable by role) walk these newest first;
        // the sweep finds due requests by (state, expires_at).
        await db.schema
          .createIndex('requests_state_seq')
          .on('requests')
          .columns(['state', 'seq'])
          .execute();
        await db.schema
          .createIndex('requests_requester_seq')
          .on('requests')
          .columns(['requester_sub', 'requester_iss', 'seq'])
          .execute();
        await db.schema
          .createIndex('requests_role_seq')
          .on('requests')
          .columns(['role', 'seq'])
          .execute();
        await db.schema
          .createIndex('requests_role_state_seq')
          .on('requests')
          .columns(['role', 'state', 'seq'])
          .execute();
        await db.schema
          .createIndex('requests_state_expires')
          .on('requests')
          .columns(['state', 'expires_at'])
          .execute();
        await db.schema
          .createIndex('requests_idempotency')
          .on('requests')
          .columns(['requester_iss', 'requester_sub', 'idempotency_key'])
          .unique()
          .execute();

        await db.schema
          .createTable('reviews')
          .addColumn('request_id', 'text', (c) =>
            c.notNull().references('requests.id').onDelete('cascade'),
          )
          .addColumn('reviewer_iss', 'text', (c) => c.notNull())
          .addColumn('reviewer_sub', 'text', (c) => c.notNull())
          .addColumn('reviewer_name', 'text')
          .addColumn('decision', 'text', (c) => c.notNull())
          .addColumn('comment', 'text')
          .addColumn('at', bigint, (c) => c.notNull())
          // One review per reviewer, enforced by the database as well as by the service.
          .addPrimaryKeyConstraint('reviews_pk', ['request_id', 'reviewer_iss', 'reviewer_sub'])
          .execute();

        await db.schema
          .createTable('audit_events')
          // SQLite: INTEGER PRIMARY KEY is the rowid, so walking the log in order reads the table
          // sequentially instead of through a separate index (audit verify over millions of rows).
          .addColumn('seq', dialect === 'postgres' ? bigint : 'integer', (c) => c.primaryKey())
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('request_id', 'text')
          .addColumn('actor', 'text')
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('prev_hash', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('audit_events_request')
          .on('audit_events')
          .columns(['request_id', 'seq'])
          .execute();

        await db.schema
          .createTable('audit_head')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('seq', bigint, (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        await sql`insert into audit_head (id, seq, hash) values (1, 0, ${GENESIS_HASH})`.execute(
          db,
        );

        await db.schema
          .createTable('signing_keys')
          .addColumn('kid', 'text', (c) => c.primaryKey())
          .addColumn('slot', 'text', (c) => c.unique())
          .addColumn('alg', 'text', (c) => c.notNull())
          .addColumn('private_jwk', 'text', (c) => c.notNull())
          .addColumn('public_jwk', 'text', (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .execute();
      },
    },
    // Signing-key rotation (jitctl server keys): a state per key instead of one slot per
    // algorithm. Existing rows stay `published` until the broker's next start adopts the one
    // that signed (key-store-db.ts), since only the configuration knows which that was.
    '0200-signing-key-states': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .alterTable('signing_keys')
          .addColumn('state', 'text', (c) => c.notNull().defaultTo('published'))
          .execute();
        await db.schema.alterTable('signing_keys').addColumn('rotated_at', bigint).execute();
        await db.schema.alterTable('signing_keys').addColumn('retired_at', bigint).execute();
      },
    },
    // The review pages (src/server/pages): browser sessions, kept in the database so that every
    // replica knows every session and signing out ends it everywhere; and their keys (sealing a
    // sign-in in progress into its cookie, binding CSRF tokens to a session), one row each,
    // created by the first broker that needs it and shared by every replica.
    '0500-review-pages': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('ui_sessions')
          // SHA-256 of the cookie's value: the table alone never gives a usable cookie.
          .addColumn('id_hash', 'text', (c) => c.primaryKey())
          .addColumn('iss', 'text', (c) => c.notNull())
          .addColumn('sub', 'text', (c) => c.notNull())
          .addColumn('caller', 'text', (c) => c.notNull())
          .addColumn('intent', 'text')
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('ui_sessions_expires')
          .on('ui_sessions')
          .column('expires_at')
          .execute();
        await db.schema
          .createTable('ui_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('secret', 'text', (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .execute();
      },
    },
    // The people directory (src/server/people/): who has signed in, with what name, email and
    // groups, so notifications can reach approvers and access reviews can list people.
    '0300-people': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('people')
          .addColumn('iss', 'text', (c) => c.notNull())
          .addColumn('sub', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('name', 'text')
          .addColumn('email', 'text')
          .addColumn('email_lower', 'text')
          .addColumn('email_verified', 'integer', (c) => c.notNull())
          .addColumn('groups', 'text', (c) => c.notNull())
          .addColumn('first_seen_at', bigint, (c) => c.notNull())
          .addColumn('last_seen_at', bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint('people_pk', ['iss', 'sub'])
          .execute();
        await db.schema.createIndex('people_email').on('people').column('email_lower').execute();
        await db.schema
          .createTable('people_groups')
          .addColumn('iss', 'text', (c) => c.notNull())
          .addColumn('sub', 'text', (c) => c.notNull())
          .addColumn('group_name', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('people_groups_pk', ['iss', 'sub', 'group_name'])
          .execute();
        await db.schema
          .createIndex('people_groups_group')
          .on('people_groups')
          .columns(['group_name', 'iss', 'sub'])
          .execute();
      },
    },
    // Notifications (src/server/notify/): the outbox every replica delivers from, and the audit
    // sequence number up to which events have been routed into it.
    '0301-notification-outbox': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('notification_outbox')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('dedupe_key', 'text', (c) => c.notNull().unique())
          .addColumn('event_type', 'text', (c) => c.notNull())
          .addColumn('request_id', 'text')
          .addColumn('event_seq', bigint, (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('target', 'text', (c) => c.notNull())
          .addColumn('priority', 'integer', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .addColumn('guard', 'text')
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('due_at', bigint, (c) => c.notNull())
          .addColumn('next_attempt_at', bigint, (c) => c.notNull())
          .addColumn('deliver_until', bigint, (c) => c.notNull())
          .addColumn('claimed_by', 'text')
          .addColumn('claimed_until', bigint)
          .addColumn('last_error', 'text')
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('done_at', bigint)
          .execute();
        await db.schema
          .createIndex('notification_outbox_due')
          .on('notification_outbox')
          .columns(['state', 'next_attempt_at'])
          .execute();
        await db.schema
          .createIndex('notification_outbox_done')
          .on('notification_outbox')
          .column('done_at')
          .execute();
        await db.schema
          .createTable('notification_cursor')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('seq', bigint, (c) => c.notNull())
          .execute();
        // Start after the events already in the log: an upgrade does not replay history.
        await sql`insert into notification_cursor (id, seq) select 1, seq from audit_head`.execute(
          db,
        );
      },
    },
    // ---- 0400–0449: the request lifecycle (extend, scheduled start, break-glass, approval rules)
    '0400-lifecycle': {
      async up(db: Kysely<unknown>) {
        const columns: [string, 'text' | 'integer' | typeof bigint, unknown?][] = [
          ['starts_at', bigint],
          ['revision', 'integer', 0],
          ['decided_by_rule', 'text'],
          ['approval_groups', 'text'],
          ['extended_ms', bigint, 0],
          ['extension_round', 'integer', 0],
          ['extension_state', 'text'],
          ['extension_ms', bigint],
          ['extension_reason', 'text'],
          ['extension_requested_at', bigint],
          ['extension_approvals_required', 'integer'],
          ['extension_approval_groups', 'text'],
          ['extension_fingerprint', 'text'],
          ['break_glass', 'integer', 0],
          ['break_glass_review_by', bigint],
          ['break_glass_verdict', 'text'],
          ['break_glass_reviewer', 'text'],
          ['break_glass_comment', 'text'],
          ['break_glass_reviewed_at', bigint],
          ['break_glass_overdue_at', bigint],
        ];
        for (const [name, type, fallback] of columns) {
          await db.schema
            .alterTable('requests')
            .addColumn(name, type, (c) =>
              fallback === undefined ? c : c.notNull().defaultTo(fallback),
            )
            .execute();
        }
        // The sweep finds unreviewed break-glass grants past their deadline through this.
        await db.schema
          .createIndex('requests_break_glass_review_by')
          .on('requests')
          .columns(['break_glass_review_by'])
          .execute();
        // Reviews of a request (round 0) and of each of its extensions (round n): one review per
        // reviewer per round. `counts_for`: the multi-party approval groups the reviewer was in.
        if (dialect === 'postgres') {
          await sql`alter table reviews add column round integer not null default 0`.execute(db);
          await sql`alter table reviews add column counts_for text`.execute(db);
          await sql`alter table reviews drop constraint reviews_pk`.execute(db);
          await sql`alter table reviews add constraint reviews_pk primary key (request_id, round, reviewer_iss, reviewer_sub)`.execute(
            db,
          );
        } else {
          // SQLite cannot change a primary key in place: rebuild the table.
          await db.schema
            .createTable('reviews_next')
            .addColumn('request_id', 'text', (c) =>
              c.notNull().references('requests.id').onDelete('cascade'),
            )
            .addColumn('round', 'integer', (c) => c.notNull().defaultTo(0))
            .addColumn('reviewer_iss', 'text', (c) => c.notNull())
            .addColumn('reviewer_sub', 'text', (c) => c.notNull())
            .addColumn('reviewer_name', 'text')
            .addColumn('decision', 'text', (c) => c.notNull())
            .addColumn('comment', 'text')
            .addColumn('at', bigint, (c) => c.notNull())
            .addColumn('counts_for', 'text')
            .addPrimaryKeyConstraint('reviews_pk', [
              'request_id',
              'round',
              'reviewer_iss',
              'reviewer_sub',
            ])
            .execute();
          await sql`insert into reviews_next (request_id, round, reviewer_iss, reviewer_sub, reviewer_name, decision, comment, at)
            select request_id, 0, reviewer_iss, reviewer_sub, reviewer_name, decision, comment, at from reviews`.execute(
            db,
          );
          await db.schema.dropTable('reviews').execute();
          await db.schema.alterTable('reviews_next').renameTo('reviews').execute();
        }
      },
    },
    ...laterMigrations(),
  };
}

class CodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.dialect);
  }
}

function migrator(db: Kysely<Database>, dialect: Dialect): Migrator {
  return new Migrator({
    db: db as unknown as Kysely<unknown>,
    provider: new CodeMigrationProvider(dialect),
    migrationTableName: 'jitctl_migrations',
    migrationLockTableName: 'jitctl_migrations_lock',
    // Each engineer's range (0400 lifecycle, 0600 revocation, 0700 audit stream…) is independent
    // of the others, so a database that ran a later range first still takes an earlier one.
    allowUnorderedMigrations: true,
  });
}

/** Brings the schema up to date; throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  const { error, results } = await migrator(db, dialect).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(
      `database migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** Whether every migration this build knows has been applied (for /readyz). */
export async function isMigrated(db: Kysely<Database>, dialect: Dialect): Promise<boolean> {
  const all = await migrator(db, dialect).getMigrations();
  return all.every((m) => m.executedAt !== undefined);
}

/** Applies migrations up to and including `name` only (tests of upgrading an older database). */
export async function migrateUpTo(
  db: Kysely<Database>,
  dialect: Dialect,
  name: string,
): Promise<void> {
  const { error } = await migrator(db, dialect).migrateTo(name);
  if (error) throw error;
}
