import { formatDuration } from '../api/duration.js';
import type { Policy, RolePolicy } from '../server/policy/index.js';
import type { Caller } from '../server/policy/types.js';
import { UsageError } from './errors.js';
import { safe } from './output.js';

/**
 * `jitctl policy check FILE --as user:alice [--group g …] --role R [--at TIME] [--for D]
 * [--ticket T] [--on-call]`: which rule of the policy would decide such a request, and why, the
 * way the broker judges it (src/server/policy/judge-rules.ts), so a policy can be tested before
 * it is deployed. The broker knows groups only from sign-ins, so they are given here.
 */

export interface ExplainOptions {
  as: string;
  group?: string[] | undefined;
  role?: string | undefined;
  at?: string | undefined;
  for?: string | undefined;
  ticket?: string | undefined;
  onCall?: boolean | undefined;
}

export interface Explanation {
  role: string;
  as: { sub: string | null; email: string | null; groups: string[] };
  at: string;
  duration: string;
  ticket: string | null;
  on_call: boolean;
  /** May this person ask for the role at all. */
  requestable: boolean;
  /** `approve`/`deny` by a rule, `review` by the approvers, `forbidden` when not requestable. */
  decision: 'approve' | 'deny' | 'review' | 'forbidden';
  rule: string | null;
  rules: {
    name: string;
    decision: string;
    matched: boolean;
    checks: { condition: string; held: boolean }[];
  }[];
  /** Who reviews when no rule decides. */
  reviewers: {
    approvers: string[];
    approvals: number;
    by_group: { from: string; count: number }[] | null;
  };
}

const CLOCK = /^([01]?\d|2[0-3]):([0-5]\d)$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$/;

export function explainTime(text: string | undefined, now: number): number {
  if (text === undefined) return now;
  const t = text.trim();
  const clock = CLOCK.exec(t);
  if (clock) {
    const d = new Date(now);
    d.setHours(Number(clock[1]), Number(clock[2]), 0, 0);
    return d.getTime();
  }
  const ms = RFC3339.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`\`--at ${safe(t)}\` is not a time`, {
      hint: 'write 14:00 (today, this machine’s clock) or an RFC 3339 time such as 2025-01-15T22:00:00+01:00',
    });
  }
  return ms;
}

export async function explain(
  policyModule: typeof import('../server/policy/index.js'),
  policy: Policy,
  opts: ExplainOptions,
  now: number,
  onCallEntries:
    | (() => Promise<ReturnType<typeof import('../server/on-call.js').parseOnCall>['entries']>)
    | null,
): Promise<Explanation> {
  if (!opts.role) {
    throw new UsageError('--as needs --role: which role the person would ask for', {
      hint: `roles: ${[...policy.roles.keys()].join(', ')}`,
    });
  }
  const role: RolePolicy | undefined = policy.roles.get(opts.role);
  if (!role) {
    throw new UsageError(`the policy has no role ${safe(opts.role)}`, {
      hint: `roles: ${[...policy.roles.keys()].join(', ')}`,
    });
  }
  const parsed = policyModule.parsePrincipal(opts.as.includes(':') ? opts.as : `user:${opts.as}`);
  if ('error' in parsed || parsed.principal.kind !== 'user') {
    throw new UsageError(`--as ${safe(opts.as)} is not a person`, {
      hint: 'write user:<subject> or user:<email>, and their groups with --group',
    });
  }
  const value = parsed.principal.value;
  const email = value.includes('@') ? value : null;
  const groups = (opts.group ?? []).map((g) => g.replace(/^group:/, ''));
  const caller: Caller = {
    iss: 'policy-check',
    sub: email ? `policy-check:${email}` : value,
    name: null,
    email,
    emailVerified: true,
    groups,
    acr: null,
    authTime: null,
  };
  const at = explainTime(opts.at, now);
  let durationMs = role.defaultDurationMs;
  if (opts.for !== undefined) {
    const { parseDuration } = await import('../api/duration.js');
    try {
      durationMs = parseDuration(opts.for);
    } catch (err) {
      throw new UsageError(`\`--for ${safe(opts.for)}\`: ${(err as Error).message}`);
    }
  }
  let onCall = opts.onCall ?? false;
  if (opts.onCall === undefined && onCallEntries) {
    onCall = policyModule.matchesAny(await onCallEntries(), caller);
  }
  const requestable = policyModule.canRequest(role, caller);
  const outcome = policyModule.judgeRules(role, {
    caller,
    durationMs,
    ticket: opts.ticket ?? null,
    at,
    onCall,
  });
  const rule = requestable ? outcome.decided : null;
  return {
    role: role.name,
    as: { sub: email ? null : value, email, groups },
    at: new Date(at).toISOString(),
    duration: formatDuration(durationMs),
    ticket: opts.ticket ?? null,
    on_call: onCall,
    requestable,
    decision: !requestable
      ? 'forbidden'
      : rule
        ? rule.decision
        : role.approvals === 0
          ? 'approve'
          : 'review',
    rule: rule?.name ?? null,
    rules: outcome.verdicts.map((v) => ({
      name: v.rule.name,
      decision: v.rule.decision,
      matched: v.matched,
      checks: v.checks,
    })),
    reviewers: {
      approvers: role.approvers.map(policyModule.formatPrincipal),
      approvals: role.approvals,
      by_group: role.approvalGroups
        ? role.approvalGroups.map((g) => ({
            from: policyModule.formatPrincipal(g.from),
            count: g.count,
          }))
        : null,
    },
  };
}

/** The explanation for people: one line per rule judged, then what decides. */
export function explanationText(e: Explanation): string {
  const who = e.as.email ?? e.as.sub ?? '?';
  const lines = [
    `${safe(who)} (groups: ${e.as.groups.length > 0 ? safe(e.as.groups.join(', ')) : 'none'}) asks for ${safe(e.role)} for ${e.duration} at ${e.at}` +
      `${e.ticket ? ` with ticket ${safe(e.ticket)}` : ''}${e.on_call ? ', on call' : ''}:`,
  ];
  if (!e.requestable) {
    lines.push(`  refused: not a requester of ${safe(e.role)}`);
    return `${lines.join('\n')}\n`;
  }
  for (const r of e.rules) {
    const checks = r.checks.map((c) => `${safe(c.condition)} ${c.held ? '✔' : '✘'}`).join('; ');
    lines.push(
      `  rule ${safe(r.name)} (${r.decision}): ${checks || 'always'}${r.matched ? `  → ${r.decision === 'deny' ? 'denies' : 'approves'}` : ''}`,
    );
  }
  if (e.rule) lines.push(`  decided by rule ${safe(e.rule)}: ${e.decision}`);
  else if (e.decision === 'approve') lines.push('  no rule decides; approvals: 0 approves at once');
  else {
    const by = e.reviewers.by_group
      ? e.reviewers.by_group.map((g) => `${g.count} from ${safe(g.from)}`).join(' and ')
      : `${e.reviewers.approvals} of ${e.reviewers.approvers.map(safe).join(', ')}`;
    lines.push(`  no rule decides: reviewed by the approvers (${by})`);
  }
  return `${lines.join('\n')}\n`;
}
