/**
 * The policy file's rules (docs/policy.md is the user's version of this file). Unknown keys are
 * errors because a typo such as `aprovers` must not silently leave a role with weaker rules than
 * its author wrote; every problem is collected so one run of `jitctl policy check` shows them all.
 */

import { docPath } from '../../api/docs.js';
import { Checker, checkKeys, describe, type ParsePolicyOptions } from './checks.js';
import { checkNotify } from './notify-section.js';
import { checkOnCall } from './on-call-section.js';
import { checkRole } from './role.js';
import { checkMaxPending, DEFAULT_MAX_PENDING } from './role-lifecycle.js';
import { type Policy, PolicyError, type PolicyIssue, type RolePolicy } from './types.js';
import { MAX_POLICY_BYTES, readYaml, type YamlValue } from './yaml-tree.js';

export type { ParsePolicyOptions } from './checks.js';
export {
  DEFAULT_DURATION_MS,
  DEFAULT_PENDING_TTL_MS,
  DURATION_CEILING_MS,
  ROLE_KEYS,
  ROLE_NAME,
} from './role.js';
export { DEFAULT_MAX_PENDING } from './role-lifecycle.js';

export const TOP_LEVEL_KEYS = ['roles', 'notify', 'max_pending', 'on_call'] as const;

export function parsePolicy(text: string, file: string, options: ParsePolicyOptions = {}): Policy {
  const c = new Checker(file, options);
  if (typeof text !== 'string') {
    c.add('', null, 'the policy is not text');
    throw new PolicyError(c.issues);
  }
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) {
    c.add(
      '',
      null,
      `the file is over ${MAX_POLICY_BYTES / 1024 / 1024} MiB; a policy is a few KiB`,
    );
    throw new PolicyError(c.issues);
  }
  const { root, issues } = readYaml(text.startsWith('\ufeff') ? text.slice(1) : text);
  for (const i of issues) c.add(i.path, i.loc, i.message);
  // After a syntax error the tree is a guess; after duplicate keys or bad aliases it is not.
  if (root === null && issues.length > 0) throw new PolicyError(sorted(c.issues));

  const policy = checkTop(c, root);
  if (c.issues.length > 0 || !policy) throw new PolicyError(sorted(c.issues));
  return policy;
}

function sorted(issues: PolicyIssue[]): PolicyIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort(
      (a, b) =>
        (a.issue.line ?? 0) - (b.issue.line ?? 0) ||
        (a.issue.column ?? 0) - (b.issue.column ?? 0) ||
        a.i - b.i,
    )
    .map((x) => x.issue);
}

function checkTop(c: Checker, root: YamlValue | null): Policy | undefined {
  const start = { line: 1, column: 1 };
  if (root === null || (root.kind === 'scalar' && root.value === null)) {
    c.add(
      '',
      start,
      `the policy is empty: it needs a \`roles\` mapping (see ${docPath('policy.md')})`,
    );
    return undefined;
  }
  if (root.kind === 'invalid') return undefined;
  if (root.kind !== 'map') {
    c.add('', root.loc, `the top level must be a mapping with \`roles\`, not ${describe(root)}`);
    return undefined;
  }
  // `x-` keys hold anchors for `<<` merges (as in Compose files) and are otherwise ignored.
  const misspelt = checkKeys(c, root, '', TOP_LEVEL_KEYS, (k) => k.startsWith('x-'));
  const maxPending = checkMaxPending(c, root.entries.get('max_pending'), '', DEFAULT_MAX_PENDING);
  const roles = new Map<string, RolePolicy>();
  const rolesEntry = root.entries.get('roles');
  if (!rolesEntry) {
    if (!misspelt.has('roles')) {
      c.add('roles', root.loc, 'missing `roles`: a mapping of role names to their rules');
    }
  } else if (rolesEntry.value.kind === 'map') {
    if (rolesEntry.value.entries.size === 0) {
      c.add('roles', rolesEntry.keyLoc, '`roles` defines no roles');
    }
    for (const entry of rolesEntry.value.entries.values()) {
      const role = checkRole(c, entry, { maxPending: maxPending ?? DEFAULT_MAX_PENDING });
      if (role) roles.set(role.name, role);
    }
  } else if (rolesEntry.value.kind !== 'invalid') {
    c.add(
      'roles',
      rolesEntry.value.loc,
      `\`roles\` must be a mapping of role names to their rules, not ${describe(rolesEntry.value)}`,
    );
  }
  const declared = new Set(rolesEntry?.value.kind === 'map' ? rolesEntry.value.entries.keys() : []);
  const notify = checkNotify(c, root.entries.get('notify'), declared);
  const onCall = checkOnCall(c, root.entries.get('on_call'));
  return { roles, notify, onCall: onCall ?? null };
}
