/**
 * The policy module: parse and validate the policy YAML (docs/policy.md),
 * and answer who may request and review a role. Shared by the broker (loaded at start) and
 * `jitctl policy check`, so both report exactly the same problems.
 */

export {
  renderEnv,
  TEMPLATE_VARIABLES,
  type TemplateValues,
  type TemplateVariable,
} from './env-template.js';
export {
  describeRule,
  inWindow,
  judgeRules,
  type RuleFacts,
  type RuleOutcome,
} from './judge-rules.js';
export { decodePolicyBytes, loadPolicyFile, readPolicyText } from './load.js';
export { type ParsePolicyOptions, parsePolicy, ROLE_KEYS, TOP_LEVEL_KEYS } from './parse.js';
export {
  canRequest,
  canReview,
  formatPrincipal,
  matchesAny,
  parsePrincipal,
} from './principal.js';
export { describeRole, type RoleDescription, roleSummary } from './summary.js';
export * from './types.js';
export { MAX_POLICY_BYTES } from './yaml-tree.js';
