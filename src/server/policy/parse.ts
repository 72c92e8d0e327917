import { formatDuration, parseDuration } from '../../api/duration.js';
import { isLoopbackHost } from '../../api/loopback.js';
import { compileTemplate } from './env-template.js';
import { formatPrincipal, PRINCIPAL_HINT, parsePrincipal, principalKey } from './principal.js';
import { closest } from './suggest.js';
import {
  type NotifyTarget,
  type Policy,
  PolicyError,
  type PolicyIssue,
  type Principal,
  type RolePolicy,
  type StepUpRule,
} from './types.js';
import {
  childPath,
  type Loc,
  MAX_POLICY_BYTES,
  readYaml,
  type YamlEntry,
  type YamlValue,
} from './yaml-tree.js';

/**
 * The policy file's rules (docs/policy.md is the user's version of this file). Unknown keys are
 * errors because a typo such as `aprovers` must not silently leave a role with weaker rules than
 * its author wrote; every problem is collected so one run of `jitctl policy check` shows them all.
 */

export interface ParsePolicyOptions {
  /**
   * The broker's `acr_levels` (weakest first). When given, a role's `step_up.acr` must be one of
   * them; `jitctl policy check` does not know the broker's levels and checks only the shape.
   */
  acrLevels?: readonly string[];
}

export const TOP_LEVEL_KEYS = ['roles', 'notify'] as const;
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
] as const;
const STEP_UP_KEYS = ['acr', 'max_age'] as const;
const CREDENTIAL_KEYS = ['audience', 'env'] as const;
const NOTIFY_KEYS = ['webhook'] as const;

export const ROLE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
/**
 * Variables that change which code a program loads or runs. A credential's environment is for
 * credentials; letting policy set these would turn `jitctl exec` into a way to run code on every
 * requester's machine.
 */
const FORBIDDEN_ENV = new Set([
  'PATH',
  'HOME',
  'SHELL',
  'IFS',
  'ENV',
  'BASH_ENV',
  'PROMPT_COMMAND',
  'NODE_OPTIONS',
  'PYTHONPATH',
  'PYTHONSTARTUP',
  'PERL5LIB',
  'PERL5OPT',
  'RUBYOPT',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
]);
const FORBIDDEN_ENV_PREFIXES = ['LD_', 'DYLD_', 'JITCTL_'];

const MINUTE = 60_000;
export const DEFAULT_DURATION_MS = 15 * MINUTE;
export const DEFAULT_PENDING_TTL_MS = 60 * MINUTE;
/** Longer than this is standing access with extra steps, which is what jitctl replaces. */
export const DURATION_CEILING_MS = 7 * 24 * 60 * MINUTE;
const MAX_COUNT = 100;
const MAX_DESCRIPTION = 1000;
const MAX_TEXT = 1024;
const MAX_ENV_VARS = 64;
const MAX_TEMPLATE = 4096;
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

class Checker {
  readonly issues: PolicyIssue[] = [];
  constructor(
    readonly file: string,
    readonly options: ParsePolicyOptions,
  ) {}
  add(path: string, loc: Loc | null, message: string): void {
    this.issues.push({
      file: this.file,
      line: loc?.line ?? null,
      column: loc?.column ?? null,
      path,
      message,
    });
  }
}

/** Parses and validates policy YAML; throws PolicyError listing every issue with its line. */
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

/** What a value is, for messages; `quote: false` leaves text out (webhook URLs carry secrets). */
function describe(v: YamlValue, quote = true): string {
  switch (v.kind) {
    case 'map':
      return 'a mapping';
    case 'seq':
      return 'a list';
    case 'invalid':
      return 'an invalid value';
    case 'scalar':
      if (v.value === null) return 'empty';
      if (v.value === '') return 'empty text';
      if (typeof v.value === 'string') return quote ? `text (\`${short(v.value)}\`)` : 'text';
      if (typeof v.value === 'number') return `a number (${v.source})`;
      return `${v.value}`;
  }
}

function short(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function checkKeys(
  c: Checker,
  map: Extract<YamlValue, { kind: 'map' }>,
  path: string,
  allowed: readonly string[],
  ignore?: (key: string) => boolean,
): Set<string> {
  const meantKeys = new Set<string>();
  for (const { key, keyLoc } of map.entries.values()) {
    if (allowed.includes(key) || ignore?.(key)) continue;
    const meant = closest(key, allowed);
    if (meant) meantKeys.add(meant);
    c.add(
      childPath(path, key),
      keyLoc,
      meant
        ? `unknown key \`${short(key)}\`; did you mean \`${meant}\`?`
        : `unknown key \`${short(key)}\` (allowed here: ${allowed.join(', ')})`,
    );
  }
  return meantKeys;
}

function checkTop(c: Checker, root: YamlValue | null): Policy | undefined {
  const start = { line: 1, column: 1 };
  if (root === null || (root.kind === 'scalar' && root.value === null)) {
    c.add('', start, 'the policy is empty: it needs a `roles` mapping (see docs/policy.md)');
    return undefined;
  }
  if (root.kind === 'invalid') return undefined;
  if (root.kind !== 'map') {
    c.add('', root.loc, `the top level must be a mapping with \`roles\`, not ${describe(root)}`);
    return undefined;
  }
  // `x-` keys hold anchors for `<<` merges (as in Compose files) and are otherwise ignored.
  const misspelt = checkKeys(c, root, '', TOP_LEVEL_KEYS, (k) => k.startsWith('x-'));
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
      const role = checkRole(c, entry);
      if (role) roles.set(role.name, role);
    }
  } else if (rolesEntry.value.kind !== 'invalid') {
    c.add(
      'roles',
      rolesEntry.value.loc,
      `\`roles\` must be a mapping of role names to their rules, not ${describe(rolesEntry.value)}`,
    );
  }
  const notify = checkNotify(c, root.entries.get('notify'));
  return { roles, notify };
}

function checkRole(c: Checker, entry: YamlEntry): RolePolicy | undefined {
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

  const approvals = checkCount(c, field('approvals'), path, 0, 1);
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

  const credentialEntry = field('credential');
  if (!credentialEntry) {
    missing('credential', 'at least its `audience`, e.g. { audience: https://k8s.example.com }');
  }
  const credential = credentialEntry && checkCredential(c, credentialEntry, path);

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
    description === undefined
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
  };
}

function checkDescription(
  c: Checker,
  entry: YamlEntry | undefined,
  path: string,
): string | null | undefined {
  if (!entry) return null;
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && v.value === null) return null;
  if (v.kind !== 'scalar' || typeof v.value !== 'string') {
    c.add(path, v.loc, `must be text, not ${describe(v)} (quote it if it looks like a number)`);
    return undefined;
  }
  if (v.value.length > MAX_DESCRIPTION) {
    c.add(path, v.loc, `is over ${MAX_DESCRIPTION} characters`);
    return undefined;
  }
  return v.value;
}

function checkPrincipals(c: Checker, entry: YamlEntry, rolePath: string): Principal[] | undefined {
  const path = childPath(rolePath, entry.key);
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'seq') {
    const example =
      v.kind === 'scalar' && typeof v.value === 'string' ? `[${short(v.value)}]` : '[group:leads]';
    c.add(path, v.loc, `must be a list such as ${example}, not ${describe(v)}`);
    return undefined;
  }
  if (v.items.length === 0) {
    c.add(path, v.loc, `must name at least one principal (${PRINCIPAL_HINT})`);
    return undefined;
  }
  const out: Principal[] = [];
  const seen = new Map<string, number>();
  let ok = true;
  v.items.forEach((item, i) => {
    const at = childPath(path, i);
    if (item.kind === 'invalid') {
      ok = false;
      return;
    }
    if (item.kind !== 'scalar' || typeof item.value !== 'string') {
      c.add(at, item.loc, `must be text (${PRINCIPAL_HINT}), not ${describe(item)}`);
      ok = false;
      return;
    }
    const parsed = parsePrincipal(item.value);
    if ('error' in parsed) {
      c.add(at, item.loc, parsed.error);
      ok = false;
      return;
    }
    const key = principalKey(parsed.principal);
    const first = seen.get(key);
    if (first !== undefined) {
      c.add(
        at,
        item.loc,
        `\`${formatPrincipal(parsed.principal)}\` is already listed at [${first}]`,
      );
      ok = false;
      return;
    }
    seen.set(key, i);
    out.push(parsed.principal);
  });
  return ok ? out : undefined;
}

function checkCount(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
  min: number,
  fallback: number,
): number | undefined {
  if (!entry) return fallback;
  const path = childPath(rolePath, entry.key);
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  const range = `a whole number from ${min} to ${MAX_COUNT}`;
  if (v.kind === 'scalar' && typeof v.value === 'string' && /^\s*\d+\s*$/.test(v.value)) {
    c.add(path, v.loc, `must be a number: write ${v.value.trim()} without quotes`);
    return undefined;
  }
  if (v.kind !== 'scalar' || typeof v.value !== 'number') {
    c.add(path, v.loc, `must be ${range}, not ${describe(v)}`);
    return undefined;
  }
  if (!Number.isInteger(v.value) || v.value < min || v.value > MAX_COUNT) {
    const why =
      entry.key === 'approvals' && v.value < 0
        ? ' (0 approves requests at once)'
        : entry.key === 'denials' && v.value < 1
          ? ' (1: one deny denies)'
          : '';
    c.add(path, v.loc, `must be ${range}, not ${v.source}${why}`);
    return undefined;
  }
  return v.value;
}

function checkDuration(
  c: Checker,
  entry: YamlEntry,
  parentPath: string,
  ceilingMs: number | null,
): number | undefined {
  const path = childPath(parentPath, entry.key);
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && typeof v.value === 'number') {
    c.add(path, v.loc, `\`${v.source}\` has no unit: write a duration such as 15m, 1h30m or 90s`);
    return undefined;
  }
  if (v.kind !== 'scalar' || typeof v.value !== 'string') {
    c.add(path, v.loc, `must be a duration such as 15m or 1h30m, not ${describe(v)}`);
    return undefined;
  }
  let ms: number;
  try {
    ms = parseDuration(v.value);
  } catch (err) {
    c.add(path, v.loc, (err as Error).message);
    return undefined;
  }
  if (ceilingMs !== null && ms > ceilingMs) {
    c.add(
      path,
      v.loc,
      `${v.value} is longer than ${formatDuration(ceilingMs)}, the most jitctl allows: ` +
        'access that long is standing access',
    );
    return undefined;
  }
  return ms;
}

function checkBoolean(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
  fallback: boolean,
): boolean | undefined {
  if (!entry) return fallback;
  const path = childPath(rolePath, entry.key);
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && typeof v.value === 'boolean') return v.value;
  const yaml11 =
    v.kind === 'scalar' &&
    typeof v.value === 'string' &&
    /^(y|yes|n|no|on|off)$/i.test(v.value.trim());
  c.add(
    path,
    v.loc,
    `must be true or false, not ${describe(v)}` +
      (yaml11 ? ' (YAML 1.2 reads yes/no/on/off as text)' : ''),
  );
  return undefined;
}

/** A short identifier or URL: no spaces or invisible characters, which no IdP or audience uses. */
function checkToken(
  c: Checker,
  entry: YamlEntry,
  parentPath: string,
  what: string,
  /** A secret value (a webhook URL): messages never quote it. */
  secret = false,
): string | undefined {
  const path = childPath(parentPath, entry.key);
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'scalar' || typeof v.value !== 'string' || v.value === '') {
    c.add(path, v.loc, `must be ${what}, not ${describe(v, !secret)}`);
    return undefined;
  }
  if (v.value.length > MAX_TEXT) {
    c.add(path, v.loc, `is over ${MAX_TEXT} characters`);
    return undefined;
  }
  if (/\s/.test(v.value) || INVISIBLE.test(v.value)) {
    c.add(
      path,
      v.loc,
      `${secret ? 'the value' : `\`${short(v.value)}\``} contains spaces or control characters`,
    );
    return undefined;
  }
  return v.value;
}

function checkStepUp(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
): StepUpRule | null | undefined {
  if (!entry) return null;
  const path = childPath(rolePath, 'step_up');
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'map') {
    c.add(
      path,
      v.loc,
      `must be a mapping such as { acr: mfa, max_age: 5m }, not ${describe(v)}` +
        ' (leave `step_up` out to require no step-up)',
    );
    return undefined;
  }
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

function checkCredential(
  c: Checker,
  entry: YamlEntry,
  rolePath: string,
): RolePolicy['credential'] | undefined {
  const path = childPath(rolePath, 'credential');
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'map') {
    c.add(
      path,
      v.loc,
      `must be a mapping such as { audience: https://k8s.example.com }, not ${describe(v)}`,
    );
    return undefined;
  }
  checkKeys(c, v, path, CREDENTIAL_KEYS);
  const audienceEntry = v.entries.get('audience');
  let audience: string | undefined;
  if (!audienceEntry) {
    c.add(
      childPath(path, 'audience'),
      entry.keyLoc,
      'missing `audience`: the system that accepts the credential (a URL or identifier)',
    );
  } else {
    audience = checkToken(c, audienceEntry, path, 'a URL or identifier');
    if (audience?.includes('://') && !URL.canParse(audience)) {
      c.add(childPath(path, 'audience'), audienceEntry.value.loc, 'is not a valid URL');
      audience = undefined;
    }
  }
  const env = checkEnv(c, v.entries.get('env'), path);
  if (audience === undefined || env === undefined) return undefined;
  return { audience, env };
}

function checkEnv(
  c: Checker,
  entry: YamlEntry | undefined,
  credentialPath: string,
): Record<string, string> | undefined {
  if (!entry) return {};
  const path = childPath(credentialPath, 'env');
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && v.value === null) return {};
  if (v.kind !== 'map') {
    c.add(path, v.loc, `must be a mapping such as { KUBE_TOKEN: "{{token}}" }, not ${describe(v)}`);
    return undefined;
  }
  if (v.entries.size > MAX_ENV_VARS) {
    c.add(path, v.loc, `declares ${v.entries.size} variables; at most ${MAX_ENV_VARS} are allowed`);
    return undefined;
  }
  const env: [string, string][] = [];
  let ok = true;
  for (const { key, keyLoc, value } of v.entries.values()) {
    const at = childPath(path, key);
    const nameProblem = envNameProblem(key);
    if (nameProblem) {
      c.add(at, keyLoc, nameProblem);
      ok = false;
    }
    if (value.kind === 'invalid') {
      ok = false;
      continue;
    }
    if (value.kind !== 'scalar' || typeof value.value !== 'string') {
      c.add(at, value.loc, `must be a text template such as "{{token}}", not ${describe(value)}`);
      ok = false;
      continue;
    }
    if (value.value.length > MAX_TEMPLATE) {
      c.add(at, value.loc, `is over ${MAX_TEMPLATE} characters`);
      ok = false;
      continue;
    }
    const compiled = compileTemplate(value.value);
    if ('error' in compiled) {
      c.add(at, value.loc, compiled.error);
      ok = false;
      continue;
    }
    env.push([key, value.value]);
  }
  return ok ? Object.fromEntries(env) : undefined;
}

function envNameProblem(name: string): string | undefined {
  if (name.length > 128 || !ENV_NAME.test(name)) {
    return (
      `\`${short(name)}\` is not a valid variable name: use upper-case letters, digits and ` +
      '`_`, not starting with a digit'
    );
  }
  if (name.startsWith('JITCTL_')) {
    return `\`${name}\` is reserved: jitctl sets JITCTL_* variables itself`;
  }
  if (FORBIDDEN_ENV.has(name) || FORBIDDEN_ENV_PREFIXES.some((p) => name.startsWith(p))) {
    return `\`${name}\` is not allowed: it changes which programs run, not which credential they use`;
  }
  return undefined;
}

/**
 * Thresholds no set of people can meet make a role that can never be approved (or denied). Only
 * decidable when approvers are all `user:` entries: a group may have any number of members.
 */
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

function checkNotify(c: Checker, entry: YamlEntry | undefined): NotifyTarget[] {
  if (!entry) return [];
  const v = entry.value;
  if (v.kind === 'invalid') return [];
  if (v.kind === 'scalar' && v.value === null) return [];
  if (v.kind !== 'seq') {
    c.add(
      'notify',
      v.loc,
      `must be a list such as [{ webhook: https://hooks.example.com/jit }], not ${describe(v, false)}`,
    );
    return [];
  }
  const targets: NotifyTarget[] = [];
  const seen = new Map<string, number>();
  v.items.forEach((item, i) => {
    const path = childPath('notify', i);
    if (item.kind === 'invalid') return;
    if (item.kind !== 'map') {
      c.add(path, item.loc, `each entry is { webhook: https://… }, not ${describe(item, false)}`);
      return;
    }
    checkKeys(c, item, path, NOTIFY_KEYS);
    const hook = item.entries.get('webhook');
    if (!hook) {
      c.add(childPath(path, 'webhook'), item.loc, 'missing `webhook`: the URL to POST events to');
      return;
    }
    const url = checkToken(c, hook, path, 'an https:// URL', true);
    if (url === undefined) return;
    const at = childPath(path, 'webhook');
    const problem = webhookProblem(url);
    if (problem) {
      c.add(at, hook.value.loc, problem);
      return;
    }
    const first = seen.get(url);
    if (first !== undefined) {
      c.add(at, hook.value.loc, `the same webhook is already listed at notify[${first}]`);
      return;
    }
    seen.set(url, i);
    targets.push({ webhook: url });
  });
  return targets;
}

function webhookProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a URL: write https://host/path';
  }
  if (url.username || url.password) {
    return 'must not carry a user name or password (use a secret path, as Slack webhooks do)';
  }
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    const host = url.hostname;
    if (isLoopbackHost(host)) return undefined;
    return 'must use https:// (plain http:// only for a receiver on this machine: 127.0.0.1, ::1, localhost)';
  }
  return `must be an https:// URL, not ${url.protocol}`;
}
