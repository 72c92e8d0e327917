import {
  type Checker,
  checkBoolean,
  checkCount,
  checkDuration,
  checkKeys,
  MAX_COUNT,
  mappingOf,
} from './checks.js';
import { formatPrincipal, parsePrincipal, principalKey } from './principal.js';
import type { ApprovalGroup, BreakGlassPolicy, ExtendPolicy, Principal } from './types.js';
import { childPath, type YamlEntry } from './yaml-tree.js';

/**
 * The role keys of the lifecycle: `approvals` as a number or per group (multi-party), `extend`,
 * `break_glass` and `max_pending`. Each checker records its problems and returns undefined for a
 * value it could not read, like the other sections.
 */

export const DEFAULT_MAX_PENDING = 3;
const EXTEND_KEYS = ['max_total', 'approvals', 'require_reason'] as const;
const BREAK_GLASS_KEYS = ['review_within', 'max_per_week'] as const;
/** A break-glass use reviewed later than this is not reviewed. */
const MAX_REVIEW_WITHIN_MS = 30 * 24 * 3_600_000;

export interface Approvals {
  count: number;
  groups: ApprovalGroup[] | null;
}

/**
 * `approvals: 2` (distinct approvers), or `approvals: { group:leads: 1, group:security: 1 }`:
 * that many from each, all together. Every group named must also be among `approvers`.
 */
export function checkApprovals(
  c: Checker,
  entry: YamlEntry | undefined,
  parentPath: string,
  approvers: Principal[] | undefined,
  fallback: Approvals,
): Approvals | undefined {
  if (!entry) return fallback;
  const v = entry.value;
  if (v.kind !== 'map') {
    const count = checkCount(c, entry, parentPath, 0, fallback.count);
    return count === undefined ? undefined : { count, groups: null };
  }
  const path = childPath(parentPath, entry.key);
  if (v.entries.size === 0) {
    c.add(path, v.loc, 'names no group: write e.g. { group:leads: 1, group:security: 1 }');
    return undefined;
  }
  const groups: ApprovalGroup[] = [];
  const seen = new Set<string>();
  const allowed = new Set((approvers ?? []).map(principalKey));
  let ok = true;
  for (const e of v.entries.values()) {
    const at = childPath(path, e.key);
    const parsed = parsePrincipal(e.key);
    if ('error' in parsed) {
      c.add(at, e.keyLoc, parsed.error);
      ok = false;
      continue;
    }
    const key = principalKey(parsed.principal);
    if (seen.has(key)) {
      c.add(at, e.keyLoc, `\`${formatPrincipal(parsed.principal)}\` is listed twice`);
      ok = false;
      continue;
    }
    seen.add(key);
    if (approvers && !allowed.has(key)) {
      c.add(
        at,
        e.keyLoc,
        `\`${formatPrincipal(parsed.principal)}\` must also be listed in \`approvers\` (only approvers review)`,
      );
      ok = false;
    }
    const count = checkCount(c, e, path, 1, 1);
    if (count === undefined) {
      ok = false;
      continue;
    }
    groups.push({ from: parsed.principal, count });
  }
  if (!ok) return undefined;
  const total = groups.reduce((n, g) => n + g.count, 0);
  if (total > MAX_COUNT) {
    c.add(path, v.loc, `asks for ${total} approvals in all; at most ${MAX_COUNT}`);
    return undefined;
  }
  return { count: total, groups };
}

/** `extend: { max_total: 4h, approvals: 1, require_reason: true }`; absent: no extensions. */
export function checkExtend(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
  approvers: Principal[] | undefined,
  roleApprovals: Approvals | undefined,
  ceilingMs: number,
): ExtendPolicy | null | undefined {
  if (!entry) return null;
  const path = childPath(rolePath, 'extend');
  const v = mappingOf(
    c,
    entry.value,
    path,
    '{ max_total: 4h }',
    ' (leave `extend` out to allow no extensions)',
  );
  if (!v) return undefined;
  checkKeys(c, v, path, EXTEND_KEYS);
  const totalEntry = v.entries.get('max_total');
  if (!totalEntry) {
    c.add(
      childPath(path, 'max_total'),
      entry.keyLoc,
      'missing `max_total`: how much longer a grant may get in all, e.g. 4h',
    );
  }
  const maxTotalMs = totalEntry && checkDuration(c, totalEntry, path, ceilingMs);
  const approvals = checkApprovals(
    c,
    v.entries.get('approvals'),
    path,
    approvers,
    roleApprovals ?? { count: 1, groups: null },
  );
  const requireReason = checkBoolean(c, v.entries.get('require_reason'), path, false);
  if (maxTotalMs === undefined || !approvals || requireReason === undefined) return undefined;
  return {
    maxTotalMs,
    approvals: approvals.count,
    approvalGroups: approvals.groups,
    requireReason,
  };
}

/** `break_glass: { review_within: 24h, max_per_week: 2 }`; absent: no break-glass. */
export function checkBreakGlass(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
): BreakGlassPolicy | null | undefined {
  if (!entry) return null;
  const path = childPath(rolePath, 'break_glass');
  const v = mappingOf(c, entry.value, path, '{ review_within: 24h, max_per_week: 2 }');
  if (!v) return undefined;
  checkKeys(c, v, path, BREAK_GLASS_KEYS);
  const within = v.entries.get('review_within');
  if (!within) {
    c.add(
      childPath(path, 'review_within'),
      entry.keyLoc,
      'missing `review_within`: how soon an approver must review a use afterwards, e.g. 24h',
    );
  }
  const reviewWithinMs = within && checkDuration(c, within, path, MAX_REVIEW_WITHIN_MS);
  const perWeek = v.entries.get('max_per_week');
  if (!perWeek) {
    c.add(
      childPath(path, 'max_per_week'),
      entry.keyLoc,
      'missing `max_per_week`: how often one person may use it in any 7 days, e.g. 2',
    );
  }
  const maxPerWeek = perWeek && checkCount(c, perWeek, path, 1, 1);
  if (reviewWithinMs === undefined || maxPerWeek === undefined) return undefined;
  return { reviewWithinMs, maxPerWeek };
}

/** `max_pending`: a whole number from 1; the policy's top-level value is the default. */
export function checkMaxPending(
  c: Checker,
  entry: YamlEntry | undefined,
  parentPath: string,
  fallback: number,
): number | undefined {
  return checkCount(c, entry, parentPath, 1, fallback);
}
