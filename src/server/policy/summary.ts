import { formatDuration } from '../../api/duration.js';
import type { RoleSummary } from '../../api/schemas.js';
import { describeRule } from './judge-rules.js';
import { canRequest, canReview, formatPrincipal } from './principal.js';
import { DEFAULT_CREDENTIAL_TTL_MS } from './role-credential.js';
import { DEFAULT_USE, useSettings } from './role-use.js';
import type { Caller, RolePolicy } from './types.js';

/** A role as `GET /v1/roles` and `jitctl policy check --json` show it, without the caller's view. */
export type RoleDescription = Omit<RoleSummary, 'can_request' | 'can_review'>;

/** The wire form of a role's rules (durations as strings, principals as written in policy). */
export function describeRole(role: RolePolicy): RoleDescription {
  return {
    name: role.name,
    description: role.description,
    default_duration: formatDuration(role.defaultDurationMs),
    max_duration: formatDuration(role.maxDurationMs),
    pending_ttl: formatDuration(role.pendingTtlMs),
    approvals: role.approvals,
    denials: role.denials,
    require_reason: role.requireReason,
    step_up: role.stepUp
      ? { acr: role.stepUp.acr, max_age: formatDuration(role.stepUp.maxAgeMs) }
      : null,
    requesters: role.requesters.map(formatPrincipal),
    approvers: role.approvers.map(formatPrincipal),
    audience: role.credential.audience,
    env: Object.keys(role.credential.env),
    approvals_by: role.approvalGroups
      ? role.approvalGroups.map((g) => ({ from: formatPrincipal(g.from), count: g.count }))
      : null,
    require_review_comment: role.requireReviewComment,
    extend: role.extend
      ? {
          max_total: formatDuration(role.extend.maxTotalMs),
          approvals: role.extend.approvals,
          require_reason: role.extend.requireReason,
        }
      : null,
    break_glass: role.breakGlass
      ? {
          review_within: formatDuration(role.breakGlass.reviewWithinMs),
          max_per_week: role.breakGlass.maxPerWeek,
        }
      : null,
    max_pending: role.maxPending,
    rules: role.rules.map((r) => ({ name: r.name, decision: r.decision, when: describeRule(r) })),
    credential_ttl: formatDuration(role.credential.ttlMs ?? DEFAULT_CREDENTIAL_TTL_MS),
    use: useSettings(role.use ?? DEFAULT_USE),
  };
}

/** The `RoleSummary` of API v1 for one caller: the role's rules plus what this caller may do. */
export function roleSummary(role: RolePolicy, caller: Caller): RoleSummary {
  return {
    ...describeRole(role),
    can_request: canRequest(role, caller),
    can_review: canReview(role, caller),
  };
}
