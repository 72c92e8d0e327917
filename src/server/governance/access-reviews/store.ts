import { type Kysely, sql } from 'kysely';
import { reusable } from '../../store/compiled.js';
import type { AccessReviewItemRow, AccessReviewRow, Database } from '../../store/schema.js';
import type { NewItem } from './items.js';
import type { Progress } from './wire.js';

/** Reads and writes of campaigns and their items (the service decides; this only stores). */

type Q = Kysely<Database>;

export async function insertCampaign(
  tx: Q,
  row: AccessReviewRow,
  items: readonly NewItem[],
): Promise<void> {
  await tx.insertInto('access_reviews').values(row).execute();
  const rows = items.map((item, i) => ({ ...item, campaign_id: row.id, n: i + 1 }));
  for (let i = 0; i < rows.length; i += 200)
    await tx
      .insertInto('access_review_items')
      .values(rows.slice(i, i + 200))
      .execute();
}

export async function getCampaign(q: Q, id: string): Promise<AccessReviewRow | undefined> {
  return q.selectFrom('access_reviews').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The campaign locked for update (PostgreSQL; SQLite's write transaction holds the file). */
export async function lockCampaign(
  tx: Q,
  id: string,
  postgres: boolean,
): Promise<AccessReviewRow | undefined> {
  let q = tx.selectFrom('access_reviews').selectAll().where('id', '=', id);
  if (postgres) q = q.forUpdate();
  return q.executeTakeFirst();
}

export async function listCampaigns(
  q: Q,
  state: 'open' | 'closed' | undefined,
  limit: number,
): Promise<AccessReviewRow[]> {
  let query = q.selectFrom('access_reviews').selectAll();
  if (state) query = query.where('state', '=', state);
  return query.orderBy('created_at', 'desc').orderBy('id').limit(limit).execute();
}

export async function itemsOf(q: Q, id: string): Promise<AccessReviewItemRow[]> {
  return q
    .selectFrom('access_review_items')
    .selectAll()
    .where('campaign_id', '=', id)
    .orderBy('n')
    .execute();
}

export async function getItem(
  q: Q,
  id: string,
  n: number,
): Promise<AccessReviewItemRow | undefined> {
  return q
    .selectFrom('access_review_items')
    .selectAll()
    .where('campaign_id', '=', id)
    .where('n', '=', n)
    .executeTakeFirst();
}

/** Items, kept and removed per campaign, in one grouped query. */
export async function progressOf(q: Q, ids: readonly string[]): Promise<Map<string, Progress>> {
  const out = new Map<string, Progress>();
  if (ids.length === 0) return out;
  const rows = await q
    .selectFrom('access_review_items')
    .select([
      'campaign_id',
      sql<number>`count(*)`.as('items'),
      sql<number>`sum(case when decision = 'keep' then 1 else 0 end)`.as('kept'),
      sql<number>`sum(case when decision = 'remove' then 1 else 0 end)`.as('removed'),
    ])
    .where('campaign_id', 'in', [...ids])
    .groupBy('campaign_id')
    .execute();
  for (const r of rows)
    out.set(r.campaign_id, {
      items: Number(r.items),
      kept: Number(r.kept ?? 0),
      removed: Number(r.removed ?? 0),
    });
  return out;
}

export async function decideItem(
  tx: Q,
  id: string,
  n: number,
  d: Pick<AccessReviewItemRow, 'decision' | 'comment' | 'decided_by' | 'decided_at' | 'basis'>,
): Promise<void> {
  await tx
    .updateTable('access_review_items')
    .set(d)
    .where('campaign_id', '=', id)
    .where('n', '=', n)
    .execute();
}

const removals = reusable((q, role, remove) =>
  q
    .selectFrom('access_review_items')
    .selectAll()
    .where('role', '=', role as string)
    .where('decision', '=', remove as 'remove')
    .where('basis', 'is not', null)
    .orderBy('decided_at'),
);

/**
 * Every removal of a role that has a basis (whatever the campaign's state). Read on every filing
 * (the gate), so compiled once.
 */
export function removalsOf(q: Q, role: string): Promise<AccessReviewItemRow[]> {
  return removals(q, role, 'remove');
}

/** Open campaigns whose reminder or overdue notice is due. */
export async function dueNotices(q: Q, now: number): Promise<AccessReviewRow[]> {
  return q
    .selectFrom('access_reviews')
    .selectAll()
    .where('state', '=', 'open')
    .where((eb) =>
      eb.or([
        eb.and([eb('reminded_at', 'is', null), eb('remind_at', '<=', now)]),
        eb.and([eb('overdue_at', 'is', null), eb('due_at', '<', now)]),
      ]),
    )
    .limit(100)
    .execute();
}
