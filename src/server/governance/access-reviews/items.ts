import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { TrustedIssuer } from '../../federation/config.js';
import { formatPrincipal, matchesAny } from '../../policy/principal.js';
import type { Principal, RolePolicy } from '../../policy/types.js';
import type { AccessReviewItemsTable, Database } from '../../store/schema.js';
import { callerOf } from '../report/compute.js';
import { entriesOf, MAX_PEOPLE_PER_ROLE, SEEN_USING_MS } from './rules.js';

/**
 * What a campaign asks about, per role, as the broker knows it when the campaign opens: every
 * requester entry of the policy, every pipeline (a `trusted_issuers` entry whose groups the role
 * names) and every identity that held a grant of the role in the last 90 days, each with its
 * last use. Who an entry covers is read from the people directory (the groups, subject and
 * verified email of each person's last sign-in). Aggregate queries, a few per role.
 */

type Q = Kysely<Database>;
export type NewItem = Omit<AccessReviewItemsTable, 'campaign_id' | 'n'>;

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** Grants of `role` whose requester `match` selects (an SQL condition on the alias `r`). */
async function grantsThrough(
  q: Q,
  role: string,
  since: number,
  match: RawBuilder<unknown>,
): Promise<{ last: number | null; uses: number }> {
  const { rows } = await sql<{ last: unknown; uses: unknown }>`
    select max(r.approved_at) as last,
      cast(sum(case when r.approved_at >= ${since} then 1 else 0 end) as bigint) as uses
    from requests r
    where r.role = ${role} and r.approved_at is not null and ${match}`.execute(q);
  return { last: num(rows[0]?.last), uses: num(rows[0]?.uses) ?? 0 };
}

/** A requester (`r`) whom the directory shows covered by `p`. */
function covers(p: Principal): RawBuilder<unknown> {
  if (p.kind === 'group')
    return sql`exists (select 1 from people_groups g where g.iss = r.requester_iss and g.sub = r.requester_sub and g.group_name = ${p.name})`;
  if (!p.value.includes('@')) return sql`r.requester_sub = ${p.value}`;
  return sql`exists (select 1 from people pe where pe.iss = r.requester_iss and pe.sub = r.requester_sub and pe.email_lower = ${p.value.toLowerCase()} and pe.email_verified = 1)`;
}

async function knownThrough(q: Q, p: Principal): Promise<number> {
  const { rows } =
    p.kind === 'group'
      ? await sql<{
          c: unknown;
        }>`select count(*) as c from people_groups where group_name = ${p.name}`.execute(q)
      : p.value.includes('@')
        ? await sql<{
            c: unknown;
          }>`select count(*) as c from people where email_lower = ${p.value.toLowerCase()} and email_verified = 1`.execute(
            q,
          )
        : await sql<{
            c: unknown;
          }>`select count(*) as c from people where sub = ${p.value}`.execute(q);
  return num(rows[0]?.c) ?? 0;
}

export async function itemsForRole(
  q: Q,
  role: RolePolicy,
  issuers: readonly TrustedIssuer[],
  publicUrl: string,
  now: number,
): Promise<NewItem[]> {
  const since = now - SEEN_USING_MS;
  const out: NewItem[] = [];
  const base = {
    role: role.name,
    subject_iss: null,
    subject_sub: null,
    subject_name: null,
    decision: null,
    comment: null,
    decided_by: null,
    decided_at: null,
    basis: null,
  };
  for (const e of entriesOf(role)) {
    const used = await grantsThrough(q, role.name, since, covers(e.principal));
    out.push({
      ...base,
      kind: 'entry',
      subject: e.subject,
      subject_key: e.key,
      via: '[]',
      known: await knownThrough(q, e.principal),
      last_used_at: used.last,
      uses: used.uses,
    });
  }
  const groups = role.requesters.flatMap((p) => (p.kind === 'group' ? [p.name] : []));
  for (const t of issuers) {
    const named = t.groups.filter((g) => groups.includes(g));
    if (named.length === 0) continue;
    const used = await grantsThrough(
      q,
      role.name,
      since,
      sql`r.requester_iss = ${publicUrl} and r.requester_name = ${t.name}`,
    );
    const { rows } = await sql<{ c: unknown }>`
      select count(*) as c from people
      where kind = 'workload' and iss = ${publicUrl} and name = ${t.name}`.execute(q);
    out.push({
      ...base,
      kind: 'pipeline',
      subject: `pipeline:${t.name}`,
      subject_key: `pipeline:${t.name}`,
      via: JSON.stringify(named),
      known: num(rows[0]?.c) ?? 0,
      last_used_at: used.last,
      uses: used.uses,
    });
  }
  const { rows: users } = await sql<Record<string, unknown>>`
    select requester_iss as iss, requester_sub as sub, max(requester_name) as name,
      max(approved_at) as last, count(*) as uses
    from requests
    where role = ${role.name} and approved_at is not null and approved_at >= ${since}
    group by requester_iss, requester_sub
    order by last desc, requester_sub
    limit ${MAX_PEOPLE_PER_ROLE}`.execute(q);
  const directory = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < users.length; i += 200) {
    const chunk = users.slice(i, i + 200);
    const { rows } = await sql<Record<string, unknown>>`
      select iss, sub, name, email, email_verified, groups from people
      where ${sql.join(
        chunk.map((u) => sql`(iss = ${String(u.iss)} and sub = ${String(u.sub)})`),
        sql` or `,
      )}`.execute(q);
    for (const p of rows) directory.set(`${String(p.iss)}\n${String(p.sub)}`, p);
  }
  for (const u of users) {
    const iss = String(u.iss);
    const sub = String(u.sub);
    const p = directory.get(`${iss}\n${sub}`);
    let via: string[] = [];
    if (p) {
      let groups: string[] = [];
      try {
        groups = JSON.parse(String(p.groups)) as string[];
      } catch {}
      const caller = callerOf({
        iss,
        sub,
        name: p.name === null ? null : String(p.name),
        email: p.email === null ? null : String(p.email),
        emailVerified: Number(p.email_verified) === 1,
        groups,
      });
      via = role.requesters.filter((e) => matchesAny([e], caller)).map(formatPrincipal);
    }
    const name = u.name === null ? null : String(u.name);
    out.push({
      ...base,
      kind: 'person',
      subject: name ?? sub,
      subject_key: null,
      subject_iss: iss,
      subject_sub: sub,
      subject_name: name,
      via: JSON.stringify(via),
      known: null,
      last_used_at: num(u.last),
      uses: num(u.uses) ?? 0,
    });
  }
  return out;
}
