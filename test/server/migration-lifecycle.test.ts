import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { openDatabase, parseDatabaseUrl } from '../../src/server/store/database.js';
import { migrateToLatest, migrateUpTo } from '../../src/server/store/migrations.js';
import { type Dialect, freshPostgresDatabase, startTestBroker } from '../support/broker.js';
import { actor, POLICY, people } from './helpers.js';

/**
 * Upgrading a database written before the lifecycle (migration 0400): its requests and reviews
 * survive, reviews become round 0, and the broker keeps serving them (a second approver can
 * still approve a half-approved request; the one who approved cannot approve again).
 */

describe.each<Dialect>(['sqlite', 'postgres'])('migration 0400 on %s', (dialect) => {
  it('keeps requests and reviews of an older database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-migrate-'));
    const pg = dialect === 'postgres' ? await freshPostgresDatabase() : undefined;
    const url = pg ? pg.url : `sqlite:${join(dir, 'old.db')}`;
    try {
      const db = await openDatabase(parseDatabaseUrl(url));
      await migrateUpTo(db.kysely, db.dialect, '0001-initial');
      const now = Date.now();
      await sql`insert into requests (id, role, state, requester_iss, requester_sub, requester_name,
        duration_ms, reason, ticket, created_at, expires_at, approved_at, ended_at,
        approvals_required, denials_required, approvers, fingerprint, review_count)
        values ('req_AbcDEFghijkm', 'two-person', 'pending', ${'ISS'}, 'alice-sub', 'Alice',
        ${1_800_000}, null, null, ${now}, ${now + 3_600_000}, null, null, 2, 2,
        '["group:leads"]', 'aaaa-bbbb-cccc-dddd', 1)`.execute(db.kysely);
      await sql`insert into reviews (request_id, reviewer_iss, reviewer_sub, reviewer_name, decision, comment, at)
        values ('req_AbcDEFghijkm', ${'ISS'}, 'lee-sub', 'Lee', 'approve', 'old', ${now})`.execute(
        db.kysely,
      );
      await migrateToLatest(db.kysely, db.dialect);
      const reviews = await db.kysely.selectFrom('reviews').selectAll().execute();
      expect(reviews).toEqual([expect.objectContaining({ reviewer_sub: 'lee-sub', round: 0 })]);
      const row = await db.kysely.selectFrom('requests').selectAll().executeTakeFirstOrThrow();
      expect(row).toMatchObject({
        revision: 0,
        extension_round: 0,
        break_glass: 0,
        starts_at: null,
      });
      await db.close();

      const b = await startTestBroker({ policy: POLICY, dbUrl: url });
      try {
        // The old rows name the issuer 'ISS'; point them at this broker's test issuer.
        const update = `update requests set requester_iss = '${b.issuer.issuer}'; update reviews set reviewer_iss = '${b.issuer.issuer}'`;
        const { rawSql } = await import('../support/broker.js');
        for (const statement of update.split(';')) await rawSql(url, statement);
        const again = await actor(b, people.lee).post('/v1/requests/req_AbcDEFghijkm/reviews', {
          decision: 'approve',
        });
        expect(again.status).toBe(409);
        const lin = await actor(b, people.lin).post<AccessRequest>(
          '/v1/requests/req_AbcDEFghijkm/reviews',
          { decision: 'approve' },
        );
        expect(lin.status, lin.text).toBe(200);
        expect(lin.body).toMatchObject({ state: 'approved', awaiting: [], extension: null });
        expect(lin.body.reviews.map((r) => r.comment)).toEqual(['old', null]);
      } finally {
        await b.close();
      }
    } finally {
      await pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
