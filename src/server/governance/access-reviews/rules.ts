import { createHash } from 'node:crypto';
import { canonicalJson } from '../../../api/audit-chain.js';
import type { PolicyEdit } from '../../../api/governance.js';
import type { TrustedIssuer } from '../../federation/config.js';
import {
  formatPrincipal,
  matchesAny,
  parsePrincipal,
  principalKey,
} from '../../policy/principal.js';
import type { Caller, Principal, RolePolicy } from '../../policy/types.js';
import type { AccessReviewItemRow } from '../../store/schema.js';

/**
 * The rules of access reviews, with no I/O (docs/governance.md "Access reviews"): who may start,
 * decide and close a campaign, what counts as deciding on one's own access, when a removal is in
 * force and whom it stops, and which policy edits make the removals last.
 *
 * A removal is keyed to the role and the item (a policy entry, a pipeline, a person) and to a
 * basis: a fingerprint of what the policy said when the removal was decided, the role's
 * `requesters` (and, for a pipeline, its `trusted_issuers` entry). It is enforced while the
 * broker's policy still has that basis and lapses as soon as it changes: the edit the campaign's
 * result asks for is a change of exactly that list, and any other edit of the list is the
 * policy's owners deciding again who may request the role.
 */

/** Grants this long before a campaign opens count as "seen using" a role. */
export const SEEN_USING_MS = 90 * 86_400_000;
/** People listed per role in a campaign, most recent users first. */
export const MAX_PEOPLE_PER_ROLE = 1_000;
/** The reminder goes this long before the due date (or halfway, for short campaigns). */
export const REMINDER_LEAD_MS = 3 * 86_400_000;
export const MIN_DUE_MS = 3_600_000;
export const MAX_DUE_MS = 366 * 86_400_000;

export interface Access {
  isAuditor(c: Caller): boolean;
  isAdmin(c: Caller): boolean;
}

/** Reminder time: three days before the due date, or halfway there when the campaign is shorter. */
export function reminderAt(createdAt: number, dueAt: number): number {
  return Math.max(createdAt + Math.floor((dueAt - createdAt) / 2), dueAt - REMINDER_LEAD_MS);
}

export function mayStart(c: Caller, access: Access): boolean {
  return access.isAuditor(c) || access.isAdmin(c);
}

export function parseReviewers(entries: readonly string[]): Principal[] | { error: string } {
  const out: Principal[] = [];
  for (const text of entries) {
    const parsed = parsePrincipal(text.trim());
    if ('error' in parsed)
      return { error: `reviewer ${JSON.stringify(text.slice(0, 80))}: ${parsed.error}` };
    if (!out.some((p) => principalKey(p) === principalKey(parsed.principal)))
      out.push(parsed.principal);
  }
  return out;
}

/** Auditors, admins, and the people the campaign names as reviewers. */
export function mayDecide(c: Caller, reviewers: readonly string[], access: Access): boolean {
  if (access.isAuditor(c) || access.isAdmin(c)) return true;
  const principals = parseReviewers(reviewers);
  return !('error' in principals) && matchesAny(principals, c);
}

/** Who may read a campaign: whoever may decide it. */
export const mayRead = mayDecide;

/**
 * Whether deciding on `item` is deciding on one's own access: the item is the caller, an entry
 * that names the caller (their group, their subject or verified email), or the pipeline the
 * caller signed in through.
 */
export function isOwnAccess(
  item: Pick<AccessReviewItemRow, 'kind' | 'subject_key' | 'subject_iss' | 'subject_sub'>,
  c: Caller,
): boolean {
  if (item.kind === 'person') return item.subject_iss === c.iss && item.subject_sub === c.sub;
  if (item.kind === 'pipeline')
    return c.workload !== undefined && item.subject_key === `pipeline:${c.workload.entry}`;
  const parsed = item.subject_key ? parsePrincipal(item.subject_key) : null;
  return parsed !== null && 'principal' in parsed && matchesAny([parsed.principal], c);
}

const fingerprint = (value: unknown) =>
  createHash('sha256').update(canonicalJson(value)).digest('base64url').slice(0, 22);

/** What a removal of an item of `role` rests on; null when the role or pipeline is gone. */
export function basisOf(
  role: RolePolicy | undefined,
  item: Pick<AccessReviewItemRow, 'kind' | 'subject_key'>,
  issuers: readonly TrustedIssuer[],
): string | null {
  if (!role) return null;
  const requesters = role.requesters.map(principalKey).sort();
  if (item.kind !== 'pipeline') return fingerprint({ requesters });
  const name = item.subject_key?.replace(/^pipeline:/, '');
  const t = issuers.find((x) => x.name === name);
  if (!t) return null;
  return fingerprint({
    requesters,
    pipeline: {
      issuer: t.issuer,
      groups: [...t.groups].sort(),
      conditions: t.conditions.map((c) =>
        c.kind === 'values' ? [c.claim, c.values] : [c.claim, { pattern: c.pattern }],
      ),
    },
  });
}

export type RemovalRow = Pick<
  AccessReviewItemRow,
  | 'campaign_id'
  | 'n'
  | 'kind'
  | 'subject'
  | 'subject_key'
  | 'subject_iss'
  | 'subject_sub'
  | 'basis'
  | 'comment'
  | 'decided_by'
  | 'decided_at'
>;

/**
 * The removal that stops `caller` from requesting `role`, if any: one of the person, one of the
 * pipeline they signed in through, or removals of every entry that makes them eligible. Only
 * removals whose basis the policy still has count.
 */
export function removalFor(
  role: RolePolicy,
  caller: Caller,
  removals: readonly RemovalRow[],
  issuers: readonly TrustedIssuer[],
): RemovalRow | null {
  const active = removals.filter((r) => r.basis !== null && r.basis === basisOf(role, r, issuers));
  const person = active.find(
    (r) => r.kind === 'person' && r.subject_iss === caller.iss && r.subject_sub === caller.sub,
  );
  if (person) return person;
  const pipeline = caller.workload
    ? active.find(
        (r) => r.kind === 'pipeline' && r.subject_key === `pipeline:${caller.workload!.entry}`,
      )
    : undefined;
  if (pipeline) return pipeline;
  const entries = active.filter((r) => r.kind === 'entry');
  if (entries.length === 0) return null;
  const removed = new Set(entries.map((r) => r.subject_key));
  const remaining = role.requesters.filter((p) => !removed.has(principalKey(p)));
  if (matchesAny(remaining, caller)) return null;
  return (
    entries.find((r) => {
      const parsed = r.subject_key ? parsePrincipal(r.subject_key) : null;
      return parsed !== null && 'principal' in parsed && matchesAny([parsed.principal], caller);
    }) ?? null
  );
}

/**
 * The edits that make a campaign's removals permanent, grouped: entries to take out of a role's
 * requesters, people to take out of a group at the identity provider (or their `user:` entry),
 * pipelines to stop giving a group (the broker's `trusted_issuers`) or to leave out of the role.
 */
export function policyEdits(
  items: readonly AccessReviewItemRow[],
  roles: ReadonlyMap<string, RolePolicy>,
): PolicyEdit[] {
  const out: PolicyEdit[] = [];
  const add = (role: string, where: string, change: string, n: number) => {
    const same = out.find((e) => e.role === role && e.where === where && e.change === change);
    if (same) same.items.push(n);
    else out.push({ role, where, change, items: [n] });
  };
  for (const item of items) {
    if (item.decision !== 'remove') continue;
    const role = roles.get(item.role);
    const path = `roles.${item.role}.requesters`;
    if (!role) {
      add(
        item.role,
        'none',
        `nothing to edit: role ${item.role} is no longer in the policy`,
        item.n,
      );
      continue;
    }
    const via: string[] = JSON.parse(item.via) as string[];
    if (item.kind === 'entry') {
      const still = role.requesters.some((p) => principalKey(p) === item.subject_key);
      add(
        item.role,
        still ? 'policy' : 'none',
        still
          ? `remove ${item.subject} from ${path}`
          : `nothing to edit: ${path} no longer has ${item.subject}`,
        item.n,
      );
    } else if (item.kind === 'pipeline') {
      const groups = via.map((g) => `group:${g}`);
      add(
        item.role,
        'broker_config',
        `stop ${item.subject} from getting ${via.join(', ')} (trusted_issuers entry ${item.subject.replace(/^pipeline:/, '')}: groups or conditions), or remove ${groups.join(', ')} from ${path}`,
        item.n,
      );
    } else {
      const users = via.filter((v) => v.startsWith('user:'));
      const groups = via.filter((v) => v.startsWith('group:'));
      if (users.length > 0)
        add(item.role, 'policy', `remove ${users.join(', ')} from ${path}`, item.n);
      for (const g of groups)
        add(
          item.role,
          'identity_provider',
          `remove ${item.subject} from group ${g.slice(6)} at the identity provider, or replace ${g} in ${path} by user: entries of those who keep it`,
          item.n,
        );
      if (via.length === 0)
        add(
          item.role,
          'none',
          `nothing to edit: ${item.subject} was not eligible through any entry when the campaign opened`,
          item.n,
        );
    }
  }
  return out;
}

/** A role's requester entries as the campaign lists them (policy spelling, match key). */
export function entriesOf(
  role: RolePolicy,
): { subject: string; key: string; principal: Principal }[] {
  return role.requesters.map((p) => ({
    subject: formatPrincipal(p),
    key: principalKey(p),
    principal: p,
  }));
}
