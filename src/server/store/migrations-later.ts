import type { Kysely, Migration } from 'kysely';

/**
 * The migrations of the audit stream (0700), revocation (0600) and governance (0800), in their
 * own file so that migrations.ts stays readable; the same rules apply (never edit a shipped one).
 */
export function laterMigrations(): Record<string, Migration> {
  const bigint = 'bigint' as const;
  return {
    // Audit streaming (src/server/audit/): signed checkpoints of the chain's head, and where each
    // HTTP sink has got to (file sinks keep their place in their own file).
    '0700-audit-stream': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('audit_checkpoints')
          .addColumn('seq', bigint, (c) => c.primaryKey())
          .addColumn('hash', 'text', (c) => c.notNull())
          .addColumn('signed_at', bigint, (c) => c.notNull())
          .addColumn('kid', 'text', (c) => c.notNull())
          .addColumn('jws', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('audit_sink_cursors')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('seq', bigint, (c) => c.notNull())
          .addColumn('checkpoint_seq', bigint, (c) => c.notNull())
          .addColumn('delivered_at', bigint)
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('last_error', 'text')
          .addColumn('claimed_by', 'text')
          .addColumn('claimed_until', bigint)
          .addColumn('created_at', bigint, (c) => c.notNull())
          .execute();
      },
    },
    // ---- 0600–0649: revocation (src/server/revocation/) ----
    // Every credential minted, so that a revocation names the jtis it stops and relying parties
    // can follow them (GET /v1/revocations); the uses of a grant the CLI reports, once each; and
    // the audit log by type, which the revocation list follows in order.
    '0600-revocation': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('credentials')
          .addColumn('jti', 'text', (c) => c.primaryKey())
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('kid', 'text', (c) => c.notNull())
          .addColumn('audience', 'text', (c) => c.notNull())
          .addColumn('issued_at', bigint, (c) => c.notNull())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('credentials_request')
          .on('credentials')
          .columns(['request_id', 'expires_at'])
          .execute();
        await db.schema
          .createTable('command_uses')
          .addColumn('use_id', 'text', (c) => c.notNull())
          .addColumn('event', 'text', (c) => c.notNull())
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addColumn('at', bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint('command_uses_pk', ['use_id', 'event'])
          .execute();
        await db.schema
          .createIndex('audit_events_type_seq')
          .on('audit_events')
          .columns(['type', 'seq'])
          .execute();
      },
    },
    // ---- 0800–0849: governance (src/server/governance/): the access report's indexes, so that
    // a report over a long history reads the period instead of the whole table, and access
    // review campaigns with their items.
    '0800-governance': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createIndex('requests_created')
          .on('requests')
          .column('created_at')
          .execute();
        await db.schema
          .createIndex('requests_role_requester_created')
          .on('requests')
          .columns(['role', 'requester_sub', 'requester_iss', 'created_at'])
          .execute();
        await db.schema.createIndex('reviews_at').on('reviews').column('at').execute();
        await db.schema
          .createIndex('audit_events_type_at')
          .on('audit_events')
          .columns(['type', 'at'])
          .execute();
        await db.schema
          .createTable('access_reviews')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('title', 'text')
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('reviewers', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('due_at', bigint, (c) => c.notNull())
          .addColumn('remind_at', bigint, (c) => c.notNull())
          .addColumn('reminded_at', bigint)
          .addColumn('overdue_at', bigint)
          .addColumn('closed_at', bigint)
          .addColumn('closed_by', 'text')
          .execute();
        await db.schema
          .createIndex('access_reviews_state_due')
          .on('access_reviews')
          .columns(['state', 'due_at'])
          .execute();
        await db.schema
          .createIndex('access_reviews_created')
          .on('access_reviews')
          .column('created_at')
          .execute();
        await db.schema
          .createTable('access_review_items')
          .addColumn('campaign_id', 'text', (c) =>
            c.notNull().references('access_reviews.id').onDelete('cascade'),
          )
          .addColumn('n', 'integer', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('subject_key', 'text')
          .addColumn('subject_iss', 'text')
          .addColumn('subject_sub', 'text')
          .addColumn('subject_name', 'text')
          .addColumn('via', 'text', (c) => c.notNull())
          .addColumn('known', 'integer')
          .addColumn('last_used_at', bigint)
          .addColumn('uses', 'integer', (c) => c.notNull())
          .addColumn('decision', 'text')
          .addColumn('comment', 'text')
          .addColumn('decided_by', 'text')
          .addColumn('decided_at', bigint)
          .addColumn('basis', 'text')
          .addPrimaryKeyConstraint('access_review_items_pk', ['campaign_id', 'n'])
          .execute();
        // Filing a request looks up the removals of its role through this.
        await db.schema
          .createIndex('access_review_items_role_decision')
          .on('access_review_items')
          .columns(['role', 'decision'])
          .execute();
      },
    },
    // ---- 0900–0949: performance ----
    // Filing counts the person's pending requests of the role (max_pending): with this index
    // that reads the pending ones only, not every request the person ever filed for the role.
    '0900-requests-pending-per-person': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createIndex('requests_requester_role_state')
          .on('requests')
          .columns(['requester_sub', 'requester_iss', 'role', 'state'])
          .execute();
      },
    },
  };
}
