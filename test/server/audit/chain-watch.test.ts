import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditChainWatch } from '../../../src/server/audit/chain-watch.js';
import { appendAudit } from '../../../src/server/audit/log.js';
import { type Db, openDatabase } from '../../../src/server/store/database.js';
import { migrateToLatest } from '../../../src/server/store/migrations.js';
import { freshPostgresDatabase, testClock } from '../../support/broker.js';

/**
 * The audit page's verdict at a bounded cost per look (src/server/audit/chain-watch.ts), on both
 * dialects: a long log is verified a budget at a time, appended events extend a verdict, edits
 * after a verdict are found by the next walk from the start, and a cut or padded tail is caught.
 */

const dirs: string[] = [];
const drops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const d of drops) await d();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function database(dialect: 'sqlite' | 'postgres'): Promise<Db> {
  if (dialect === 'postgres') {
    const fresh = await freshPostgresDatabase();
    const db = await openDatabase({ dialect: 'postgres', location: fresh.url });
    drops.push(async () => {
      await db.close();
      await fresh.drop();
    });
    await migrateToLatest(db.kysely, 'postgres');
    return db;
  }
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-watch-'));
  dirs.push(dir);
  const db = await openDatabase({ dialect: 'sqlite', location: join(dir, 'a.db') });
  drops.push(() => db.close());
  await migrateToLatest(db.kysely, 'sqlite');
  return db;
}

async function append(db: Db, n: number): Promise<void> {
  await db.transaction((tx) =>
    appendAudit(
      tx,
      db.dialect,
      Date.now(),
      Array.from({ length: n }, (_, i) => ({
        type: 'request.created' as const,
        request_id: `req_${i}`,
        actor: { iss: 'https://idp.example.com', sub: 'alice', name: 'Alice' },
        data: { role: 'prod-deploy', i },
      })),
    ),
  );
}

describe.each(['sqlite', 'postgres'] as const)('AuditChainWatch on %s', (dialect) => {
  it('verifies a budget at a time, then extends the verdict to new events only', async () => {
    const db = await database(dialect);
    await append(db, 10);
    const clock = testClock();
    const watch = new AuditChainWatch(db, clock, { budget: 4 });
    expect(await watch.status()).toMatchObject({ state: 'checking', walked: 4, headSeq: 10 });
    expect(await watch.status()).toMatchObject({ state: 'checking', walked: 8, verified: null });
    const done = await watch.status();
    expect(done).toMatchObject({ state: 'intact', walked: 10, problem: null });
    expect(done.verified?.events).toBe(10);
    await append(db, 3);
    expect(await watch.status()).toMatchObject({ state: 'intact', walked: 13, headSeq: 13 });
    // Looks at once share one step.
    const [x, y] = await Promise.all([watch.status(), watch.status()]);
    expect(x).toBe(y);
  });

  it('finds an edit made after the verdict when it walks from the start again', async () => {
    const db = await database(dialect);
    await append(db, 6);
    const clock = testClock();
    const watch = new AuditChainWatch(db, clock, { budget: 100, rewalkMs: 60_000 });
    expect((await watch.status()).state).toBe('intact');
    await db.kysely
      .updateTable('audit_events')
      .set({ data: '{"i":99,"role":"prod-deploy"}' })
      .where('seq', '=', 3)
      .execute();
    expect((await watch.status()).state).toBe('intact');
    clock.advance(61_000);
    const broken = await watch.status();
    expect(broken).toMatchObject({
      state: 'broken',
      problem: {
        seq: 3,
        reason: "hash does not match the event's content (changed after it was written)",
      },
    });
    // Evidence stays, whatever happens next.
    expect((await watch.status()).state).toBe('broken');
  });

  it('reports a cut tail and an event slipped in past the head', async () => {
    const cut = await database(dialect);
    await append(cut, 5);
    await cut.kysely.deleteFrom('audit_events').where('seq', '=', 5).execute();
    expect((await new AuditChainWatch(cut, testClock()).status()).problem).toEqual({
      seq: 5,
      reason: 'event 5 is missing (the head says the log has 5 events)',
    });

    const padded = await database(dialect);
    await append(padded, 3);
    const row = await padded.kysely
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '=', 3)
      .executeTakeFirstOrThrow();
    await padded.kysely
      .insertInto('audit_events')
      .values({ ...row, seq: 4, prev_hash: row.hash })
      .execute();
    expect((await new AuditChainWatch(padded, testClock()).status()).problem).toEqual({
      seq: 4,
      reason: 'event 4 is past the head (3): added outside the broker',
    });
  });
});
