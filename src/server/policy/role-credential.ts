import {
  type Checker,
  checkDuration,
  checkKeys,
  checkToken,
  describe,
  mappingOf,
  short,
} from './checks.js';
import { compileTemplate } from './env-template.js';
import type { RolePolicy } from './types.js';
import { childPath, type YamlEntry } from './yaml-tree.js';

/** A role's `credential` section: the audience, the environment templates, the lifetime. */

const CREDENTIAL_KEYS = ['audience', 'env', 'ttl'] as const;

/**
 * How long one credential lasts when the role does not say (`credential.ttl`), capped by the
 * grant's window. A relying party that checks only the signature (the JWKS) stops accepting a
 * revoked grant's credentials within this time, because the broker mints no fresh ones; the CLI
 * mints a fresh one whenever a tool asks for it (docs/credentials.md "Credential lifetime").
 */
export const DEFAULT_CREDENTIAL_TTL_MS = 15 * 60_000;
/** Shorter would make every tool call a mint. */
export const MIN_CREDENTIAL_TTL_MS = 30_000;
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
const MAX_ENV_VARS = 64;
const MAX_TEMPLATE = 4096;

export function checkCredential(
  c: Checker,
  entry: YamlEntry,
  rolePath: string,
): RolePolicy['credential'] | undefined {
  const path = childPath(rolePath, 'credential');
  const v = mappingOf(c, entry.value, path, '{ audience: https://k8s.example.com }');
  if (!v) return undefined;
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
  const ttlEntry = v.entries.get('ttl');
  let ttlMs: number | undefined = DEFAULT_CREDENTIAL_TTL_MS;
  if (ttlEntry) {
    ttlMs = checkDuration(c, ttlEntry, path, null);
    if (ttlMs !== undefined && ttlMs < MIN_CREDENTIAL_TTL_MS) {
      c.add(
        childPath(path, 'ttl'),
        ttlEntry.value.loc,
        `is shorter than 30s: every tool call would mint a credential (5m is a good lifetime)`,
      );
      ttlMs = undefined;
    }
  }
  if (audience === undefined || env === undefined || ttlMs === undefined) return undefined;
  return { audience, env, ttlMs };
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
