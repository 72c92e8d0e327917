import type { ApprovalProgress } from '../../../api/schemas.js';
import { formatPrincipal, matchesAny } from '../../policy/principal.js';
import type { ApprovalGroup, Caller, Principal } from '../../policy/types.js';
import type { ReviewRow } from '../../store/schema.js';

/**
 * Counting approvals. A plain `approvals: N` needs N distinct approvers. Multi-party approvals
 * (`approvals: { group:leads: 1, group:security: 1 }`) need that many from each group, all
 * together, and one person counts once: a reviewer in both groups fills one place, never two,
 * so two-party approval stays two people. Which places the approvals fill is a bipartite
 * matching (each approval to one place of a group its reviewer was in when reviewing), solved
 * exactly with augmenting paths; the numbers are tiny (at most 100 places).
 */

/** The snapshot stored with a request (`approval_groups`): principals as written in the policy. */
export interface StoredGroup {
  from: string;
  count: number;
}

export function storeGroups(groups: ApprovalGroup[] | null): string | null {
  return groups
    ? JSON.stringify(groups.map((g) => ({ from: formatPrincipal(g.from), count: g.count })))
    : null;
}

export function readGroups(text: string | null): StoredGroup[] | null {
  return text === null ? null : (JSON.parse(text) as StoredGroup[]);
}

/** The groups of `stored` the caller is in now (recorded with their review). */
export function groupsOf(
  stored: StoredGroup[] | null,
  caller: Caller,
  parse: (text: string) => Principal,
): string[] {
  if (!stored) return [];
  return stored.filter((g) => matchesAny([parse(g.from)], caller)).map((g) => g.from);
}

/** Per group: needed and filled, with the largest number of places the approvals can fill. */
export function progressOf(
  stored: StoredGroup[],
  reviews: readonly ReviewRow[],
): ApprovalProgress[] {
  const places: string[] = stored.flatMap((g) => Array<string>(g.count).fill(g.from));
  const approvers = reviews
    .filter((r) => r.decision === 'approve')
    .map((r) => new Set(r.counts_for ? (JSON.parse(r.counts_for) as string[]) : []));
  const holder = new Array<number>(places.length).fill(-1);
  const tryAssign = (a: number, seen: boolean[]): boolean => {
    for (let p = 0; p < places.length; p++) {
      if (seen[p] || !approvers[a]!.has(places[p]!)) continue;
      seen[p] = true;
      if (holder[p] === -1 || tryAssign(holder[p]!, seen)) {
        holder[p] = a;
        return true;
      }
    }
    return false;
  };
  approvers.forEach((_, a) => {
    tryAssign(a, new Array<boolean>(places.length).fill(false));
  });
  return stored.map((g) => ({
    from: g.from,
    required: g.count,
    approved: places.filter((p, i) => p === g.from && holder[i] !== -1).length,
  }));
}

/** Whether `reviews` approve: N distinct approvers, or every group filled. */
export function isApproved(
  required: number,
  stored: StoredGroup[] | null,
  reviews: readonly ReviewRow[],
): boolean {
  if (stored) return progressOf(stored, reviews).every((p) => p.approved >= p.required);
  return reviews.filter((r) => r.decision === 'approve').length >= required;
}

/** "1 of 1 from group:leads, 0 of 1 from group:security" */
export function describeProgress(progress: ApprovalProgress[]): string {
  return progress.map((p) => `${p.approved} of ${p.required} from ${p.from}`).join(', ');
}
