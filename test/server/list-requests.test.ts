import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestState } from '../../src/api/schemas.js';
import type { Db } from '../../src/server/store/database.js';
import { type ListFilter, listRequests } from '../../src/server/store/requests.js';
import { migratedDatabase, requestRow } from '../support/store.js';

/**
 * A reviewer's list (GET /v1/requests with a role restriction): one keyset branch per role plus
 * the caller's own requests, merged into one page, newest first. On both dialects: order across
 * branches, a request found by two branches listed once, the page size applied after merging,
 * the cursor, the state filter, and the caller removed when asked.
 */
describe.each(['sqlite', 'postgres'] as const)('listRequests with roles (%s)', (dialect) => {
  let db: Db;
  let close: (() => Promise<void>) | undefined;
  const ALICE = { iss: 'https://idp', sub: 'alice' };
  const LEE = { iss: 'https://idp', sub: 'lee' };
  /** seq order = insertion order; [id, role, requester, state] */
  const ROWS: [string, string, string, RequestState][] = [
    ['r1', 'deploy', 'alice', 'pending'],
    ['r2', 'db', 'bob', 'pending'],
    ['r3', 'other', 'lee', 'pending'],
    ['r4', 'deploy', 'lee', 'approved'],
    ['r5', 'other', 'carol', 'pending'],
    ['r6', 'db', 'alice', 'denied'],
    ['r7', 'deploy', 'bob', 'pending'],
  ];

  beforeAll(async () => {
    ({ db, close } = await migratedDatabase(dialect));
    for (const [id, role, sub, state] of ROWS) {
      await db.kysely
        .insertInto('requests')
        .values(requestRow({ id, role, state, requester_sub: sub }))
        .execute();
    }
  });

  afterAll(async () => {
    await close?.();
  });

  const ids = async (f: Partial<ListFilter>) =>
    (await listRequests(db.kysely, { limit: 50, ...f })).map((r) => r.id);

  it('merges the roles and the caller own requests newest first, each request once', async () => {
    // lee reviews deploy and db; r4 is both his own and a deploy request.
    expect(await ids({ roles: ['deploy', 'db'], self: LEE })).toEqual([
      'r7',
      'r6',
      'r4',
      'r3',
      'r2',
      'r1',
    ]);
    expect(await ids({ roles: ['deploy', 'db'], self: LEE, rolesOnly: true })).toEqual([
      'r7',
      'r6',
      'r4',
      'r2',
      'r1',
    ]);
  });

  it('applies the page size to the merged list, and the cursor to every branch', async () => {
    expect(await ids({ roles: ['deploy', 'db'], self: LEE, limit: 2 })).toEqual(['r7', 'r6']);
    const seqOf = async (id: string) =>
      (
        await db.kysely
          .selectFrom('requests')
          .select('seq')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).seq;
    expect(
      await ids({ roles: ['deploy', 'db'], self: LEE, limit: 2, beforeSeq: await seqOf('r6') }),
    ).toEqual(['r4', 'r3']);
  });

  it('filters by state and can leave the caller out', async () => {
    expect(await ids({ roles: ['deploy', 'db'], self: ALICE, state: 'pending' })).toEqual([
      'r7',
      'r2',
      'r1',
    ]);
    expect(
      await ids({ roles: ['deploy', 'db'], self: ALICE, excludeSelf: true, rolesOnly: true }),
    ).toEqual(['r7', 'r4', 'r2']);
  });

  it('finds approved grants whose extension waits for review (the pages’ home list)', async () => {
    // r4 is an approved deploy grant; give it a pending extension, and r6 (denied) a stale one.
    await db.kysely
      .updateTable('requests')
      .set({ extension_state: 'pending' })
      .where('id', 'in', ['r4', 'r6'])
      .execute();
    try {
      expect(await ids({ roles: ['deploy', 'db'], extensionPending: true })).toEqual(['r4']);
      expect(await ids({ roles: ['db'], extensionPending: true })).toEqual([]);
      expect(
        await ids({ roles: ['deploy'], self: LEE, excludeSelf: true, extensionPending: true }),
      ).toEqual([]);
    } finally {
      await db.kysely
        .updateTable('requests')
        .set({ extension_state: null })
        .where('id', 'in', ['r4', 'r6'])
        .execute();
    }
  });

  it('returns nothing for no roles and no caller', async () => {
    expect(await ids({ roles: [] })).toEqual([]);
    expect(await ids({ roles: ['nobody-reviews-this'] })).toEqual([]);
  });
});
