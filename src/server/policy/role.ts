import { formatDuration } from '../../api/duration.js';
import {
  type Checker,
  checkBoolean,
  checkCount,
  checkDescription,
  checkDuration,
  checkKeys,
  checkPrincipals,
  checkToken,
  describe,
  mappingOf,
  short,
} from './checks.js';
import { formatPrincipal, principalKey } from './principal.js';
import { checkCredential } from './role-credential.js';
import {
  checkApprovals,
  checkBreakGlass,
  checkExtend,
  checkMaxPending,
  DEFAULT_MAX_PENDING,
} from './role-lifecycle.js';
import { checkRules } from './role-rules.js';
import { checkUse, USE_KEYS } from './role-use.js';
import { closest } from './suggest.js';
import type { Principal, RolePolicy, StepUpRule } from './types.js';
import { childPath, type YamlEntry } from './yaml-tree.js';

/** One entry of `roles`: its keys, defaults and the checks that span several keys. */

export const ROLE_KEYS = [
  'description',
  'requesters',
  'approvers',
  'approvals',
  'denials',
  'default_duration',
  'max_duration',
  'pending_ttl',
  'require_reason',
  'step_up',
  'credential',
  'require_review_comment',
  'extend',
  'break_glass',
  'max_pending',
  'rules',
  // using a grant: on_revoke, kill_at_expiry, audit_commands, audit_commands_required
  ...USE_KEYS,
] as const;
const STEP_UP_KEYS = ['acr', 'max_age'] as const;

export const ROLE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const MINUTE = 60_000;
export const DEFAULT_DURATION_MS = 15 * MINUTE;
export const DEFAULT_PENDING_TTL_MS = 60 * MINUTE;
/** Longer than this is standing access with extra steps, which is what jitctl replaces. */
export const DURATION_CEILING_MS = 7 * 24 * 60 * MINUTE;

export interface RoleDefaults {
  /** The policy's top-level `max_pending`. */
  maxPending: number;
}

export function checkRole(
  c: Checker,
  entry: YamlEntry,
  defaults: RoleDefaults = { maxPending: DEFAULT_MAX_PENDING },
): RolePolicy | undefined {
  const name = entry.key;
  const path = childPath('roles', name);
  const before = c.issues.length;
  if (!ROLE_NAME.test(name)) {
    const lower = name.toLowerCase();
    c.add(
      path,
      entry.keyLoc,
      ROLE_NAME.test(lower)
        ? `role name \`${short(name)}\` must be lower-case: \`${lower}\``
        : `role name \`${short(name)}\` is not allowed: use lower-case letters, digits, \`.\`, ` +
            '`_` and `-`, starting with a letter or digit, at most 63 characters',
    );
  }
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'map') {
    c.add(
      path,
      v.loc,
      `a role must be a mapping of its rules (requesters, approvers, max_duration, credential, …), not ${describe(v)}`,
    );
    return undefined;
  }
  const misspelt = checkKeys(c, v, path, ROLE_KEYS);
  const field = (key: string) => v.entries.get(key);
  // A misspelt key already has its "did you mean"; saying it is missing too would be noise.
  const missing = (key: string, what: string) => {
    if (!misspelt.has(key))
      c.add(childPath(path, key), entry.keyLoc, `missing \`${key}\`: ${what}`);
  };

  const description = checkDescription(c, field('description'), childPath(path, 'description'));

  const requesters = field('requesters');
  if (!requesters) missing('requesters', 'who may ask for this role, e.g. [group:developers]');
  const requesterList = requesters && checkPrincipals(c, requesters, path);
  const approvers = field('approvers');
  if (!approvers) missing('approvers', 'who may approve requests, e.g. [group:leads]');
  const approverList = approvers && checkPrincipals(c, approvers, path);

  const approvalsRead = checkApprovals(c, field('approvals'), path, approverList, {
    count: 1,
    groups: null,
  });
  const approvals = approvalsRead?.count;
  const denials = checkCount(c, field('denials'), path, 1, 1);

  const maxEntry = field('max_duration');
  if (!maxEntry) missing('max_duration', 'the longest a credential may last, e.g. 1h');
  const maxDurationMs = maxEntry && checkDuration(c, maxEntry, path, DURATION_CEILING_MS);
  const defaultEntry = field('default_duration');
  const defaultDurationMs = defaultEntry
    ? checkDuration(c, defaultEntry, path, DURATION_CEILING_MS)
    : Math.min(DEFAULT_DURATION_MS, maxDurationMs ?? DEFAULT_DURATION_MS);
  if (
    defaultEntry &&
    defaultDurationMs !== undefined &&
    maxDurationMs !== undefined &&
    defaultDurationMs > maxDurationMs
  ) {
    c.add(
      childPath(path, 'default_duration'),
      defaultEntry.value.loc,
      `default_duration ${formatDuration(defaultDurationMs)} is longer than max_duration ` +
        `${formatDuration(maxDurationMs)}`,
    );
  }
  const ttlEntry = field('pending_ttl');
  const pendingTtlMs = ttlEntry
    ? checkDuration(c, ttlEntry, path, DURATION_CEILING_MS)
    : DEFAULT_PENDING_TTL_MS;

  const requireReason = checkBoolean(c, field('require_reason'), path, false);
  const stepUp = checkStepUp(c, field('step_up'), path);

  const requireReviewComment = checkBoolean(c, field('require_review_comment'), path, false);
  const extend = checkExtend(
    c,
    field('extend'),
    path,
    approverList,
    approvalsRead,
    DURATION_CEILING_MS,
  );
  const breakGlass = checkBreakGlass(c, field('break_glass'), path);
  const maxPending = checkMaxPending(c, field('max_pending'), path, defaults.maxPending);
  const rules = checkRules(c, field('rules'), path, DURATION_CEILING_MS);

  const credentialEntry = field('credential');
  if (!credentialEntry) {
    missing('credential', 'at least its `audience`, e.g. { audience: https://k8s.example.com }');
  }
  const credential = credentialEntry && checkCredential(c, credentialEntry, path);
  const use = checkUse(c, field, path);

  if (
    requesterList &&
    approverList &&
    approvals !== undefined &&
    denials !== undefined &&
    approvers
  ) {
    checkReachable(c, approvers, path, requesterList, approverList, approvals, denials);
  }

  if (
    c.issues.length > before ||
    !requesterList ||
    !approverList ||
    approvals === undefined ||
    denials === undefined ||
    maxDurationMs === undefined ||
    defaultDurationMs === undefined ||
    pendingTtlMs === undefined ||
    requireReason === undefined ||
    stepUp === undefined ||
    !credential ||
    description === undefined ||
    !approvalsRead ||
    requireReviewComment === undefined ||
    extend === undefined ||
    breakGlass === undefined ||
    maxPending === undefined ||
    !rules ||
    !use
  ) {
    return undefined;
  }
  return {
    name,
    description,
    requesters: requesterList,
    approvers: approverList,
    approvals,
    denials,
    defaultDurationMs,
    maxDurationMs,
    pendingTtlMs,
    requireReason,
    stepUp,
    credential,
    approvalGroups: approvalsRead.groups,
    requireReviewComment,
    extend,
    breakGlass,
    maxPending,
    rules,
    use,
  };
}

function checkStepUp(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
): StepUpRule | null | undefined {
  if (!entry) return null;
  const path = childPath(rolePath, 'step_up');
  const v = mappingOf(
    c,
    entry.value,
    path,
    '{ acr: mfa, max_age: 5m }',
    ' (leave `step_up` out to require no step-up)',
  );
  if (!v) return undefined;
  checkKeys(c, v, path, STEP_UP_KEYS);
  const acrEntry = v.entries.get('acr');
  const maxAgeEntry = v.entries.get('max_age');
  if (!acrEntry) {
    c.add(childPath(path, 'acr'), entry.keyLoc, 'missing `acr`: the level required, e.g. mfa');
  }
  if (!maxAgeEntry) {
    c.add(
      childPath(path, 'max_age'),
      entry.keyLoc,
      'missing `max_age`: how recent the sign-in must be, e.g. 5m',
    );
  }
  let acr = acrEntry && checkToken(c, acrEntry, path, 'an acr value such as mfa');
  const levels = c.options.acrLevels;
  if (acr !== undefined && acrEntry && levels && !levels.includes(acr)) {
    const meant = closest(acr, levels);
    c.add(
      childPath(path, 'acr'),
      acrEntry.value.loc,
      `\`${short(acr)}\` is not one of the broker's acr_levels (${levels.join(', ')})` +
        (meant ? `; did you mean \`${meant}\`?` : ''),
    );
    acr = undefined;
  }
  const maxAgeMs = maxAgeEntry && checkDuration(c, maxAgeEntry, path, null);
  if (acr === undefined || maxAgeMs === undefined) return undefined;
  return { acr, maxAgeMs };
}

function checkReachable(
  c: Checker,
  approversEntry: YamlEntry,
  rolePath: string,
  requesters: Principal[],
  approvers: Principal[],
  approvals: number,
  denials: number,
): void {
  if (approvers.some((p) => p.kind === 'group')) return;
  const n = approvers.length;
  const approversPath = childPath(rolePath, 'approvers');
  if (approvals > n) {
    c.add(
      approversPath,
      approversEntry.value.loc,
      `lists ${n} approver${n === 1 ? '' : 's'} but approvals is ${approvals}: requests could ` +
        'never be approved (add approvers or a group, or lower approvals)',
    );
    return;
  }
  if (approvals > 0 && denials > n) {
    c.add(
      approversPath,
      approversEntry.value.loc,
      `lists ${n} approver${n === 1 ? '' : 's'} but denials is ${denials}: requests could never ` +
        'be denied (add approvers or a group, or lower denials)',
    );
    return;
  }
  if (approvals === 0) return;
  const approverKeys = new Set(approvers.map(principalKey));
  for (const r of requesters) {
    if (r.kind === 'user' && approverKeys.has(principalKey(r)) && n - 1 < approvals) {
      c.add(
        approversPath,
        approversEntry.value.loc,
        `\`${formatPrincipal(r)}\` may request this role but nobody reviews their own request, ` +
          `which leaves ${n - 1} of the ${approvals} approval${approvals === 1 ? '' : 's'} needed`,
      );
      return;
    }
  }
}
