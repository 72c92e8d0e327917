import { formatDuration, parseDuration } from '../../api/duration.js';
import { formatPrincipal, PRINCIPAL_HINT, parsePrincipal, principalKey } from './principal.js';
import { closest } from './suggest.js';
import type { PolicyIssue, Principal } from './types.js';
import { childPath, type Loc, type YamlEntry, type YamlValue } from './yaml-tree.js';

/**
 * The checks every section of the policy file shares: where a problem is recorded (with its line),
 * how a value is described in a message, and the typed readers of counts, durations, booleans,
 * tokens, text and principal lists. A section (a role, its credential, notify, …) lives in its own
 * file and builds on these.
 */

export interface ParsePolicyOptions {
  /**
   * The broker's `acr_levels` (weakest first). When given, a role's `step_up.acr` must be one of
   * them; `jitctl policy check` does not know the broker's levels and checks only the shape.
   */
  acrLevels?: readonly string[];
}

export const MAX_COUNT = 100;
export const MAX_DESCRIPTION = 1000;
export const MAX_TEXT = 1024;
export const MAX_ENV_VARS = 64;
export const MAX_TEMPLATE = 4096;
export const INVISIBLE =
  /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

export class Checker {
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

/** What a value is, for messages; `quote: false` leaves text out (webhook URLs carry secrets). */
export function describe(v: YamlValue, quote = true): string {
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

export function short(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** A mapping value (e.g. `extend`, `step_up`); anything else is recorded as `must be a mapping
 * such as EXAMPLE, not …` (nothing more when the YAML itself was already reported). */
export function mappingOf(
  c: Checker,
  v: YamlValue,
  path: string,
  example: string,
  after = '',
): Extract<YamlValue, { kind: 'map' }> | undefined {
  if (v.kind === 'map') return v;
  if (v.kind !== 'invalid')
    c.add(path, v.loc, `must be a mapping such as ${example}, not ${describe(v)}${after}`);
  return undefined;
}

export function checkKeys(
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

export function checkDescription(
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

export function checkPrincipals(
  c: Checker,
  entry: YamlEntry,
  rolePath: string,
): Principal[] | undefined {
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

export function checkCount(
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

export function checkDuration(
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

export function checkBoolean(
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
export function checkToken(
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
