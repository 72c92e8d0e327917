import { formatDuration } from '../../api/duration.js';
import { formatPrincipal, matchesAny } from './principal.js';
import { DAY_NAMES } from './role-rules.js';
import type { AutoRule, Caller, RolePolicy, TimeWindow } from './types.js';

/**
 * A role's approval rules judged for one request (docs/policy.md "Approval rules"): in order,
 * the first whose conditions all hold decides. Time conditions are judged at the start of the
 * access (filing, or the scheduled start). Pure: the on-call list is a fact the caller looked up.
 * `jitctl policy check --as` prints the same explanation the broker acts on.
 */

export interface RuleFacts {
  caller: Caller;
  durationMs: number;
  ticket: string | null;
  /** When the access would start (ms). */
  at: number;
  /** Whether the requester is on the on-call list now. */
  onCall: boolean;
}

export interface RuleVerdict {
  rule: AutoRule;
  /** Each condition and whether it held. */
  checks: { condition: string; held: boolean }[];
  matched: boolean;
}

export interface RuleOutcome {
  /** The rule that decides, if any. */
  decided: AutoRule | null;
  /** Every rule up to the deciding one, with its checks. */
  verdicts: RuleVerdict[];
}

export function judgeRules(role: RolePolicy, facts: RuleFacts): RuleOutcome {
  const verdicts: RuleVerdict[] = [];
  for (const rule of role.rules) {
    const checks = conditionsOf(rule).map((c) => ({ condition: c.text, held: c.test(facts) }));
    const matched = checks.every((c) => c.held);
    verdicts.push({ rule, checks, matched });
    if (matched) return { decided: rule, verdicts };
  }
  return { decided: null, verdicts };
}

interface Condition {
  text: string;
  test(f: RuleFacts): boolean;
}

/** A rule's conditions, in words; the same words `GET /v1/roles` shows. */
export function conditionsOf(rule: AutoRule): Condition[] {
  const out: Condition[] = [];
  if (rule.requesters) {
    const list = rule.requesters;
    out.push({
      text: `the requester is ${list.map(formatPrincipal).join(' or ')}`,
      test: (f) => matchesAny(list, f.caller),
    });
  }
  if (rule.onCall) out.push({ text: 'the requester is on call', test: (f) => f.onCall });
  if (rule.within) {
    const w = rule.within;
    out.push({ text: `it starts within ${w.text}`, test: (f) => inWindow(w, f.at) });
  }
  if (rule.outside) {
    const w = rule.outside;
    out.push({ text: `it starts outside ${w.text}`, test: (f) => !inWindow(w, f.at) });
  }
  if (rule.ticket) {
    const re = rule.ticket;
    out.push({
      text: `the ticket matches ${re.source.replace(/^\^\(\?:(.*)\)\$$/, '$1')}`,
      test: (f) => f.ticket !== null && re.test(f.ticket),
    });
  }
  if (rule.maxDurationMs !== undefined) {
    const max = rule.maxDurationMs;
    out.push({
      text: `the duration is at most ${formatDuration(max)}`,
      test: (f) => f.durationMs <= max,
    });
  }
  return out;
}

export function describeRule(rule: AutoRule): string {
  const c = conditionsOf(rule).map((x) => x.text);
  return c.length === 0 ? 'always' : c.join(' and ');
}

const WEEKDAY = new Map(DAY_NAMES.map((d, i) => [d, i]));

/** Whether `at` falls inside the window, in the window's time zone (overnight windows wrap). */
export function inWindow(w: TimeWindow, at: number): boolean {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: w.timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(at));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  const day = WEEKDAY.get(get('weekday').toLowerCase() as (typeof DAY_NAMES)[number]) ?? 0;
  const minute = Number(get('hour')) * 60 + Number(get('minute'));
  if (w.fromMinute < w.toMinute) {
    return w.days.includes(day) && minute >= w.fromMinute && minute < w.toMinute;
  }
  // Overnight (22:00-06:00): the evening belongs to its day, the early morning to the day before.
  if (minute >= w.fromMinute) return w.days.includes(day);
  return minute < w.toMinute && w.days.includes((day + 6) % 7);
}
