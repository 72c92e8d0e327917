import {
  type Checker,
  checkBoolean,
  checkDuration,
  checkKeys,
  checkPrincipals,
  describe,
  INVISIBLE,
  mappingOf,
  short,
} from './checks.js';
import type { AutoRule, TimeWindow } from './types.js';
import { childPath, type YamlEntry, type YamlValue } from './yaml-tree.js';

/**
 * A role's `rules`: decisions made at filing, in order, the first whose conditions all hold
 * deciding (docs/policy.md "Approval rules"). A rule with no condition always matches, which is
 * how a role says "deny everything else".
 */

const RULE_KEYS = [
  'name',
  'decision',
  'on_call',
  'within',
  'outside',
  'ticket',
  'max_duration',
  'requesters',
] as const;
const WINDOW_KEYS = ['days', 'hours', 'timezone'] as const;
export const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const MAX_RULES = 50;
const MAX_PATTERN = 200;
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/;

export function checkRules(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
  ceilingMs: number,
): AutoRule[] | undefined {
  if (!entry) return [];
  const path = childPath(rolePath, 'rules');
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && v.value === null) return [];
  if (v.kind !== 'seq') {
    c.add(
      path,
      v.loc,
      `must be a list such as [{ name: on-call, decision: approve, on_call: true }], not ${describe(v)}`,
    );
    return undefined;
  }
  if (v.items.length > MAX_RULES) {
    c.add(path, v.loc, `has ${v.items.length} rules; at most ${MAX_RULES}`);
    return undefined;
  }
  const rules: AutoRule[] = [];
  const names = new Map<string, number>();
  let ok = true;
  v.items.forEach((item, i) => {
    const rule = checkRule(c, item, childPath(path, i), ceilingMs);
    if (!rule) {
      ok = false;
      return;
    }
    const first = names.get(rule.name);
    if (first !== undefined) {
      c.add(
        childPath(childPath(path, i), 'name'),
        item.loc,
        `\`${rule.name}\` is already the name of rules[${first}]`,
      );
      ok = false;
      return;
    }
    names.set(rule.name, i);
    rules.push(rule);
  });
  return ok ? rules : undefined;
}

function checkRule(
  c: Checker,
  item: YamlValue,
  path: string,
  ceilingMs: number,
): AutoRule | undefined {
  if (item.kind === 'invalid') return undefined;
  if (item.kind !== 'map') {
    c.add(
      path,
      item.loc,
      `each rule is a mapping with \`name\` and \`decision\`, not ${describe(item)}`,
    );
    return undefined;
  }
  const before = c.issues.length;
  checkKeys(c, item, path, RULE_KEYS);
  const get = (k: string) => item.entries.get(k);
  const nameEntry = get('name');
  let name: string | undefined;
  if (!nameEntry) {
    c.add(
      childPath(path, 'name'),
      item.loc,
      'missing `name`: the audit log and `policy check` name the rule that decided',
    );
  } else if (
    nameEntry.value.kind !== 'scalar' ||
    typeof nameEntry.value.value !== 'string' ||
    !RULE_NAME.test(nameEntry.value.value)
  ) {
    c.add(
      childPath(path, 'name'),
      nameEntry.value.loc,
      'must be a short name: letters, digits, spaces, `.`, `_` and `-`, at most 63 characters',
    );
  } else {
    name = nameEntry.value.value;
  }
  const decisionEntry = get('decision');
  let decision: 'approve' | 'deny' | undefined;
  if (!decisionEntry) {
    c.add(childPath(path, 'decision'), item.loc, 'missing `decision`: approve or deny');
  } else if (
    decisionEntry.value.kind === 'scalar' &&
    (decisionEntry.value.value === 'approve' || decisionEntry.value.value === 'deny')
  ) {
    decision = decisionEntry.value.value;
  } else {
    c.add(
      childPath(path, 'decision'),
      decisionEntry.value.loc,
      `must be approve or deny, not ${describe(decisionEntry.value)}`,
    );
  }
  const rule: AutoRule = { name: name ?? '', decision: decision ?? 'deny' };
  const onCall = checkBoolean(c, get('on_call'), path, false);
  if (onCall) rule.onCall = true;
  const within = get('within');
  if (within) {
    const w = checkWindow(c, within, path);
    if (w) rule.within = w;
  }
  const outside = get('outside');
  if (outside) {
    const w = checkWindow(c, outside, path);
    if (w) rule.outside = w;
  }
  const ticket = get('ticket');
  if (ticket) {
    const re = checkPattern(c, ticket, path);
    if (re) rule.ticket = re;
  }
  const maxDuration = get('max_duration');
  if (maxDuration) {
    const ms = checkDuration(c, maxDuration, path, ceilingMs);
    if (ms !== undefined) rule.maxDurationMs = ms;
  }
  const requesters = get('requesters');
  if (requesters) {
    const list = checkPrincipals(c, requesters, path);
    if (list) rule.requesters = list;
  }
  if (rule.decision === 'approve' && Object.keys(rule).length === 2 && c.issues.length === before) {
    c.add(
      path,
      item.loc,
      `rule \`${rule.name}\` approves every request without a condition; use \`approvals: 0\` for that`,
    );
  }
  return c.issues.length > before ? undefined : rule;
}

/**
 * A ticket pattern: a JavaScript regular expression matched against the whole ticket. Nested
 * quantifiers (`(a+)+`) are refused: against a crafted ticket they take exponential time, and the
 * ticket is typed by requesters.
 */
function checkPattern(c: Checker, entry: YamlEntry, parentPath: string): RegExp | undefined {
  const path = childPath(parentPath, entry.key);
  const v = entry.value;
  if (v.kind !== 'scalar' || typeof v.value !== 'string' || v.value === '') {
    c.add(path, v.loc, `must be a regular expression such as '^INC-[0-9]+$', not ${describe(v)}`);
    return undefined;
  }
  if (v.value.length > MAX_PATTERN || INVISIBLE.test(v.value)) {
    c.add(path, v.loc, `must be at most ${MAX_PATTERN} visible characters`);
    return undefined;
  }
  if (/\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]/.test(v.value)) {
    c.add(
      path,
      v.loc,
      `\`${short(v.value)}\` repeats a repetition (like (a+)+), which can take exponential time on a crafted ticket; write it without the nesting`,
    );
    return undefined;
  }
  try {
    const body = v.value.replace(/^\^/, '').replace(/\$$/, '');
    return new RegExp(`^(?:${body})$`, 'u');
  } catch (err) {
    c.add(path, v.loc, `is not a valid regular expression: ${(err as Error).message}`);
    return undefined;
  }
}

/** `{ days: mon-fri, hours: 09:00-17:00, timezone: Europe/Berlin }` */
export function checkWindow(
  c: Checker,
  entry: YamlEntry,
  parentPath: string,
): TimeWindow | undefined {
  const path = childPath(parentPath, entry.key);
  const v = mappingOf(
    c,
    entry.value,
    path,
    '{ days: mon-fri, hours: 09:00-17:00, timezone: Europe/Berlin }',
  );
  if (!v) return undefined;
  checkKeys(c, v, path, WINDOW_KEYS);
  const before = c.issues.length;
  const daysEntry = v.entries.get('days');
  const days = daysEntry ? parseDays(c, daysEntry, path) : [0, 1, 2, 3, 4, 5, 6];
  const hoursEntry = v.entries.get('hours');
  let fromMinute = 0;
  let toMinute = 24 * 60;
  if (hoursEntry) {
    const h = hoursEntry.value;
    const m =
      h.kind === 'scalar' && typeof h.value === 'string'
        ? /^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-4]):([0-5]\d)\s*$/.exec(h.value)
        : null;
    if (!m || (m[3] === '24' && m[4] !== '00')) {
      c.add(
        childPath(path, 'hours'),
        h.loc,
        `must look like 09:00-17:00 (24-hour clock), not ${describe(h)}`,
      );
    } else {
      fromMinute = Number(m[1]) * 60 + Number(m[2]);
      toMinute = Number(m[3]) * 60 + Number(m[4]);
      if (fromMinute === toMinute) {
        c.add(
          childPath(path, 'hours'),
          h.loc,
          'starts and ends at the same time: the window is empty',
        );
      }
    }
  }
  const tzEntry = v.entries.get('timezone');
  let timeZone = 'UTC';
  if (tzEntry) {
    const t = tzEntry.value;
    if (t.kind !== 'scalar' || typeof t.value !== 'string' || !validZone(t.value)) {
      c.add(
        childPath(path, 'timezone'),
        t.loc,
        `must be an IANA time zone such as Europe/Berlin or UTC, not ${describe(t)}`,
      );
    } else timeZone = t.value;
  }
  if (c.issues.length > before || !days) return undefined;
  const text = `${daysEntry ? describeDays(days) : 'every day'} ${hoursEntry ? String((hoursEntry.value as { value: unknown }).value).replace(/\s/g, '') : 'all day'} ${timeZone}`;
  return { days, fromMinute, toMinute, timeZone, text };
}

function validZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function parseDays(c: Checker, entry: YamlEntry, parentPath: string): number[] | undefined {
  const path = childPath(parentPath, 'days');
  const v = entry.value;
  const words =
    v.kind === 'scalar' && typeof v.value === 'string'
      ? v.value.split(',')
      : v.kind === 'seq'
        ? v.items.map((i) => (i.kind === 'scalar' ? String(i.value) : ''))
        : null;
  const fail = () => {
    c.add(
      path,
      v.loc,
      `must be days such as mon-fri, [sat, sun] or "mon,wed,fri", not ${describe(v)}`,
    );
    return undefined;
  };
  if (!words) return fail();
  const days = new Set<number>();
  for (const raw of words) {
    const w = raw.trim().toLowerCase();
    const range = /^([a-z]{3})\s*-\s*([a-z]{3})$/.exec(w);
    const index = (d: string) => DAY_NAMES.indexOf(d as (typeof DAY_NAMES)[number]);
    if (range) {
      const a = index(range[1]!);
      const b = index(range[2]!);
      if (a < 0 || b < 0) return fail();
      for (let d = a; ; d = (d + 1) % 7) {
        days.add(d);
        if (d === b) break;
      }
    } else {
      const d = index(w);
      if (d < 0) return fail();
      days.add(d);
    }
  }
  return [...days].sort();
}

function describeDays(days: number[]): string {
  return days.map((d) => DAY_NAMES[d]).join(',');
}
