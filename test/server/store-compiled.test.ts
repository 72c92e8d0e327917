import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, verifyAuditTable } from '../../src/server/audit/log.js';
import { reusable } from '../../src/server/store/compiled.js';
import type { Db } from '../../src/server/store/database.js';
import { migratedDatabase } from '../support/database.js';

/**
 * Queries compiled once (src/server/store/compiled.ts): built once per dialect and row count when
 * the builder only passes its values through, built every time otherwise; the same rows either way.
 */
describe.each(['sqlite', 'postgres'] as const)('queries compiled once (%s)', (dialect) => {
  let db: Db;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ db, cleanup } = await migratedDatabase(dialect));
  });
  afterAll(async () => cleanup?.());

  it('builds a pass-through query once, and runs it with each call’s values', async () => {
    let built = 0;
    const byDecision = reusable((q, a, b) => {
      built++;
      return q
        .selectFrom('audit_events')
        .select('seq')
        .where('type', 'in', [a as string, b as string])
        .orderBy('seq');
    });
    await appendAudit(db.kysely, dialect, 1_800_000_000_000, [
      { type: 'request.created', request_id: 'req_a', actor: null, data: {} },
      { type: 'request.approved', request_id: 'req_a', actor: null, data: {} },
      { type: 'request.denied', request_id: 'req_b', actor: null, data: { n: 1 } },
    ]);
    const types = async (a: string, b: string) =>
      (await byDecision(db.kysely, a, b)).map((r) => Number(r.seq));
    expect(await types('request.created', 'request.denied')).toEqual([1, 3]);
    expect(await types('request.approved', 'request.approved')).toEqual([2]);
    expect(await types('x', 'request.denied')).toEqual([3]);
    // Once with placeholders; the calls run the compiled statement.
    expect(built).toBe(1);
    // In a transaction too (another kysely handle, the same dialect).
    await db.transaction(async (tx) => {
      expect((await byDecision(tx, 'request.created', 'y')).map((r) => Number(r.seq))).toEqual([1]);
    });
    expect(built).toBe(1);
    expect((await verifyAuditTable(db)).ok).toBe(true);
  });

  it('builds every time a query whose parameters are not just its values, in their order', async () => {
    let built = 0;
    // A constant of its own (a parameter that is no value), and values used in another order.
    const withConstant = reusable((q, type) => {
      built++;
      return q
        .selectFrom('audit_events')
        .select('seq')
        .where('seq', '>', 0)
        .where('type', '=', type as string);
    });
    const swapped = reusable((q, a, b) => {
      built++;
      return q
        .selectFrom('audit_events')
        .select(sql<string>`${b}`.as('second'))
        .where('type', '=', a as string);
    });
    expect((await withConstant(db.kysely, 'request.denied')).map((r) => Number(r.seq))).toEqual([
      3,
    ]);
    expect((await withConstant(db.kysely, 'request.created')).map((r) => Number(r.seq))).toEqual([
      1,
    ]);
    expect(await swapped(db.kysely, 'request.denied', 'B')).toEqual([{ second: 'B' }]);
    expect(await swapped(db.kysely, 'request.created', 'C')).toEqual([{ second: 'C' }]);
    // 1 + 2 for withConstant (the check, then each call), 1 + 2 for swapped.
    expect(built).toBe(6);
  });
});
