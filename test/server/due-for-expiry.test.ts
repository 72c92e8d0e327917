import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestState } from '../../src/api/schemas.js';
import type { Db } from '../../src/server/store/database.js';
import { dueForExpiry } from '../../src/server/store/requests.js';
import { migratedDatabase, requestRow } from '../support/store.js';

/**
 * The expiry sweep's query (one ordered index range per state, merged): both live states, the
 * oldest deadline first across them, never a finished request or one not yet due, and the limit
 * applied to the merged list. On both dialects.
 */
describe.each(['sqlite', 'postgres'] as const)('dueForExpiry (%s)', (dialect) => {
  let db: Db;
  let close: (() => Promise<void>) | undefined;
  const NOW = 1_800_000_000_000;

  beforeAll(async () => {
    ({ db, close } = await migratedDatabase(dialect));
    const row = (id: string, state: RequestState, expiresAt: number) =>
      requestRow({ id, state, created_at: NOW - 7_200_000, expires_at: expiresAt });
    await db.kysely
      .insertInto('requests')
      .values([
        row('pending-late', 'pending', NOW - 1_000),
        row('approved-early', 'approved', NOW - 50_000),
        row('pending-early', 'pending', NOW - 40_000),
        row('approved-late', 'approved', NOW - 100),
        row('approved-now', 'approved', NOW),
        row('pending-future', 'pending', NOW + 1),
        row('approved-future', 'approved', NOW + 60_000),
        row('expired-long-ago', 'expired', NOW - 90_000),
        row('denied-long-ago', 'denied', NOW - 80_000),
        row('revoked-long-ago', 'revoked', NOW - 70_000),
      ])
      .execute();
  });

  afterAll(async () => {
    await close?.();
  });

  it('lists live requests whose deadline passed, oldest deadline first, across both states', async () => {
    expect(await dueForExpiry(db.kysely, NOW, 100)).toEqual([
      'approved-early',
      'pending-early',
      'pending-late',
      'approved-late',
      'approved-now',
    ]);
  });

  it('applies the limit to the merged list, not to each state', async () => {
    expect(await dueForExpiry(db.kysely, NOW, 3)).toEqual([
      'approved-early',
      'pending-early',
      'pending-late',
    ]);
    expect(await dueForExpiry(db.kysely, NOW, 1)).toEqual(['approved-early']);
  });

  it('finds nothing before any deadline', async () => {
    expect(await dueForExpiry(db.kysely, NOW - 60_000, 10)).toEqual([]);
  });
});
