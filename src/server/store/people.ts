import type { Kysely } from 'kysely';
import type { Database, PersonRow } from './schema.js';

/**
 * Queries of the people directory (src/server/people/directory.ts wraps them). One set for both
 * dialects: `ON CONFLICT … DO UPDATE` is SQLite's and PostgreSQL's upsert alike.
 */

type Q = Kysely<Database>;

export interface PersonWrite {
  iss: string;
  sub: string;
  kind: 'person' | 'workload';
  name: string | null;
  email: string | null;
  emailVerified: boolean;
  groups: string[];
  at: number;
}

/** Inserts or refreshes one person and replaces their groups; run it in a transaction. */
export async function upsertPerson(tx: Q, p: PersonWrite): Promise<void> {
  const fields = {
    kind: p.kind,
    name: p.name,
    email: p.email,
    email_lower: p.email?.toLowerCase() ?? null,
    email_verified: p.emailVerified ? 1 : 0,
    groups: JSON.stringify(p.groups),
    last_seen_at: p.at,
  };
  await tx
    .insertInto('people')
    .values({ iss: p.iss, sub: p.sub, first_seen_at: p.at, ...fields })
    .onConflict((oc) => oc.columns(['iss', 'sub']).doUpdateSet(fields))
    .execute();
  await tx.deleteFrom('people_groups').where('iss', '=', p.iss).where('sub', '=', p.sub).execute();
  if (p.groups.length > 0) {
    await tx
      .insertInto('people_groups')
      .values(p.groups.map((g) => ({ iss: p.iss, sub: p.sub, group_name: g })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }
}

export async function getPerson(q: Q, iss: string, sub: string): Promise<PersonRow | undefined> {
  return q
    .selectFrom('people')
    .selectAll()
    .where('iss', '=', iss)
    .where('sub', '=', sub)
    .executeTakeFirst();
}

export interface PeopleQuery {
  /** Members of any of these groups (as their last sign-in showed). */
  groups?: readonly string[];
  /** People with any of these subjects (at any issuer). */
  subs?: readonly string[];
  /** People with any of these emails (case-insensitive). */
  emails?: readonly string[];
  /** Seen at or after this time. */
  seenSince?: number;
  /** Keyset: after this (iss, sub). */
  after?: { iss: string; sub: string };
  limit: number;
}

/** People matching any of the given selectors (all people without selectors), by (iss, sub). */
export async function findPeople(q: Q, query: PeopleQuery): Promise<PersonRow[]> {
  const { groups = [], subs = [], emails = [] } = query;
  const selective =
    query.groups !== undefined || query.subs !== undefined || query.emails !== undefined;
  if (selective && groups.length + subs.length + emails.length === 0) return [];
  let s = q.selectFrom('people').selectAll('people');
  if (selective) {
    s = s.where((eb) => {
      const ors = [];
      if (groups.length > 0)
        ors.push(
          eb.exists(
            eb
              .selectFrom('people_groups')
              .select('people_groups.sub')
              .whereRef('people_groups.iss', '=', 'people.iss')
              .whereRef('people_groups.sub', '=', 'people.sub')
              .where('people_groups.group_name', 'in', [...groups]),
          ),
        );
      if (subs.length > 0) ors.push(eb('people.sub', 'in', [...subs]));
      if (emails.length > 0)
        ors.push(
          eb(
            'people.email_lower',
            'in',
            emails.map((e) => e.toLowerCase()),
          ),
        );
      return eb.or(ors);
    });
  }
  if (query.seenSince !== undefined) s = s.where('people.last_seen_at', '>=', query.seenSince);
  if (query.after) {
    const { iss, sub } = query.after;
    s = s.where((eb) =>
      eb.or([
        eb('people.iss', '>', iss),
        eb.and([eb('people.iss', '=', iss), eb('people.sub', '>', sub)]),
      ]),
    );
  }
  return s.orderBy('people.iss').orderBy('people.sub').limit(query.limit).execute();
}
