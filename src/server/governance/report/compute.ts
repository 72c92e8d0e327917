import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type { Finding, Report, RoleReport, Who } from '../../../api/governance.js';
import type { ServerClock } from '../../clock.js';
import { HttpError } from '../../errors.js';
import type { TrustedIssuer } from '../../federation/config.js';
import { formatPrincipal, matchesAny } from '../../policy/principal.js';
import type { Caller, Policy, RolePolicy } from '../../policy/types.js';
import type { Db } from '../../store/database.js';
import { parseFrequent, parseSince } from './period.js';
import {
  approverPairs,
  type BreakGlassRow,
  breakGlassUses,
  commandTotals,
  decisionTimes,
  type EligibleRow,
  eligiblePeople,
  frequentRequesters,
  mutualApprovals,
  type Period,
  programUses,
  type RoleCounts,
  roleCounts,
} from './queries.js';

/**
 * The access report (docs/governance.md "Reports"): one computation, from the aggregate queries
 * of queries.ts, the policy and the people directory, that `GET /v1/reports` answers as JSON and
 * every renderer (text, Markdown, CSV, HTML, the auditors' page) draws from.
 */

export interface ReportDeps {
  db: Db;
  clock: ServerClock;
  policy: Policy;
  /** Pipelines: their workloads sign in as the broker's own issuer, named after their entry. */
  trustedIssuers: readonly TrustedIssuer[];
  publicUrl: string;
}

export interface ReportQuery {
  since?: string | undefined;
  role?: string | undefined;
  frequent?: string | undefined;
}

/** Rows kept per role where lists could grow with the history. */
const PER_ROLE = { pairs: 50, breakGlass: 50, frequent: 50, programs: 25, unusedPeople: 100 };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const dur = (ms: number | null) => (ms === null ? null : formatDuration(ms));
const nameOf = (w: Who) => w.name ?? w.sub;
const avg = (sum: number, count: number) => (count === 0 ? null : Math.round(sum / count));

export class ReportService {
  constructor(private readonly deps: ReportDeps) {}

  async compute(query: ReportQuery): Promise<Report> {
    const { db, clock, policy } = this.deps;
    const now = clock.now();
    const since = parseSince(query.since, now);
    const frequent = parseFrequent(query.frequent);
    const role = query.role?.trim() || null;
    const period: Period = { from: since.from, to: now, role };
    const q = db.kysely;

    const counts = await roleCounts(q, period, now);
    if (role !== null && !policy.roles.has(role) && !counts.some((c) => c.role === role)) {
      throw new HttpError(
        400,
        ErrorCode.UnknownRole,
        `there is no role ${JSON.stringify(role.slice(0, 128))} in the policy nor in the period's history`,
        `roles: ${[...policy.roles.keys()].join(', ') || '(none)'}`,
      );
    }
    const [times, pairs, mutual, breakGlass, frequentRows, programs, commands] = await Promise.all([
      decisionTimes(q, period),
      approverPairs(q, period, 5_000),
      mutualApprovals(q, period, 500),
      breakGlassUses(q, period, PER_ROLE.breakGlass),
      frequentRequesters(q, period, frequent.count, frequent.withinMs, 1_000),
      programUses(q, db.dialect, period, 2_000),
      commandTotals(q, db.dialect, period),
    ]);
    const mutualKeys = new Set(
      mutual.flatMap((m) => [
        `${m.a.iss}\n${m.a.sub}\n${m.b.iss}\n${m.b.sub}`,
        `${m.b.iss}\n${m.b.sub}\n${m.a.iss}\n${m.a.sub}`,
      ]),
    );

    const names = new Set<string>(counts.map((c) => c.role));
    for (const r of policy.roles.keys()) if (role === null || r === role) names.add(r);
    const roles: RoleReport[] = [];
    for (const name of [...names].sort()) {
      const c = counts.find((x) => x.role === name);
      const t = times.get(name);
      const rolePolicy = policy.roles.get(name);
      const totals = commands.get(name) ?? { runs: 0, people: 0, failed: 0, late: 0 };
      roles.push({
        role: name,
        description: rolePolicy?.description ?? null,
        in_policy: rolePolicy !== undefined,
        requests: {
          filed: c?.filed ?? 0,
          approved: c?.approved ?? 0,
          approved_automatically: c?.auto ?? 0,
          denied: c?.denied ?? 0,
          expired: c?.expired ?? 0,
          cancelled: c?.cancelled ?? 0,
          pending: c?.pending ?? 0,
          revoked: c?.revoked ?? 0,
        },
        time_to_decision: {
          decided: t?.decided ?? 0,
          median: dur(t?.medianMs ?? null),
          median_ms: t?.medianMs ?? null,
          p90: dur(t?.p90Ms ?? null),
          p90_ms: t?.p90Ms ?? null,
        },
        durations: durationsOf(c),
        approver_pairs: pairs
          .filter((p) => p.role === name)
          .slice(0, PER_ROLE.pairs)
          .map((p) => ({
            reviewer: p.reviewer,
            requester: p.requester,
            approvals: p.approvals,
            mutual: mutualKeys.has(
              `${p.reviewer.iss}\n${p.reviewer.sub}\n${p.requester.iss}\n${p.requester.sub}`,
            ),
          })),
        break_glass: {
          uses: c?.breakGlass ?? 0,
          acknowledged: c?.bgAcknowledged ?? 0,
          flagged: c?.bgFlagged ?? 0,
          unreviewed: c?.bgUnreviewed ?? 0,
          overdue: c?.bgOverdue ?? 0,
          items: breakGlass.filter((b) => b.role === name).map((b) => breakGlassItem(b, now)),
        },
        frequent: frequentRows
          .filter((f) => f.role === name)
          .slice(0, PER_ROLE.frequent)
          .map((f) => ({ person: f.person, most_within: f.mostWithin, requests: f.requests })),
        commands: {
          ...totals,
          programs: programs
            .filter((x) => x.role === name)
            .slice(0, PER_ROLE.programs)
            .map((x) => ({
              program: x.program,
              runs: x.runs,
              people: x.people,
              failed: x.failed,
              last_at: x.lastAt,
            })),
        },
        unused: rolePolicy
          ? await this.#unused(rolePolicy, period)
          : { entries: [], people: [], people_total: 0 },
      });
    }

    const report: Report = {
      generated_at: iso(now)!,
      since: iso(since.from)!,
      until: iso(now)!,
      period: since.label,
      role,
      frequent_threshold: { count: frequent.count, within: formatDuration(frequent.withinMs) },
      totals: {
        requests: sum(roles, (r) => r.requests.filed),
        approved: sum(roles, (r) => r.requests.approved),
        denied: sum(roles, (r) => r.requests.denied),
        break_glass: sum(roles, (r) => r.break_glass.uses),
        command_runs: sum(roles, (r) => r.commands.runs),
      },
      findings: [],
      mutual_approvals: mutual.map((m) => ({
        a: m.a,
        b: m.b,
        a_approved_b: m.aApprovedB,
        b_approved_a: m.bApprovedA,
      })),
      roles,
    };
    report.findings = findingsOf(report);
    return report;
  }

  /**
   * Least-privilege candidates: the role's requester entries, with how many people the directory
   * knows through each and how many of them filed a request in the period; and the eligible
   * people who filed none. Pipelines count through the groups their trusted issuer gives them.
   */
  async #unused(role: RolePolicy, period: Period): Promise<RoleReport['unused']> {
    const groups = role.requesters.flatMap((p) => (p.kind === 'group' ? [p.name] : []));
    const users = role.requesters.flatMap((p) => (p.kind === 'user' ? [p.value] : []));
    const people = await eligiblePeople(
      this.deps.db.kysely,
      role.name,
      {
        groups,
        subs: users.filter((u) => !u.includes('@')),
        emails: users.filter((u) => u.includes('@')).map((u) => u.toLowerCase()),
      },
      period,
    );
    const viaOf = (p: EligibleRow) =>
      role.requesters.filter((e) => matchesAny([e], callerOf(p))).map(formatPrincipal);
    const entries = role.requesters.map((e) => {
      const covered = people.filter((p) => matchesAny([e], callerOf(p)));
      return {
        entry: formatPrincipal(e),
        known: covered.length,
        used: covered.filter((p) => p.inPeriod > 0).length,
      };
    });
    // A trusted issuer whose groups a group entry names: its workloads, counted by their name.
    for (const t of this.deps.trustedIssuers) {
      if (!t.groups.some((g) => groups.includes(g))) continue;
      const covered = people.filter(
        (p) => p.kind === 'workload' && p.iss === this.deps.publicUrl && p.name === t.name,
      );
      entries.push({
        entry: `pipeline:${t.name}`,
        known: covered.length,
        used: covered.filter((p) => p.inPeriod > 0).length,
      });
    }
    const idle = people.filter((p) => p.inPeriod === 0);
    return {
      entries: entries.filter((e) => e.used === 0),
      people: idle
        .sort(
          (a, b) => (a.lastRequestAt ?? 0) - (b.lastRequestAt ?? 0) || a.sub.localeCompare(b.sub),
        )
        .slice(0, PER_ROLE.unusedPeople)
        .map((p) => ({
          person: { iss: p.iss, sub: p.sub, name: p.name },
          via: viaOf(p),
          last_request_at: iso(p.lastRequestAt),
          last_seen_at: iso(p.lastSeenAt)!,
        })),
      people_total: idle.length,
    };
  }
}

/** A directory entry as a caller, for matching policy entries against it. */
export function callerOf(p: {
  iss: string;
  sub: string;
  name: string | null;
  email: string | null;
  emailVerified: boolean;
  groups: string[];
}): Caller {
  return {
    iss: p.iss,
    sub: p.sub,
    name: p.name,
    email: p.email,
    emailVerified: p.emailVerified,
    groups: p.groups,
    acr: null,
    authTime: null,
  };
}

function sum<T>(items: T[], f: (t: T) => number): number {
  return items.reduce((a, t) => a + f(t), 0);
}

/** Asked, granted and used time of the grants whose window ended (averages, and the share used). */
function durationsOf(c: RoleCounts | undefined): RoleReport['durations'] {
  const grants = c?.grantsEnded ?? 0;
  const asked = avg(c?.askedSum ?? 0, grants);
  const granted = avg(c?.grantedSum ?? 0, grants);
  const used = avg(c?.usedSum ?? 0, grants);
  return {
    grants,
    asked_avg: dur(asked),
    asked_avg_ms: asked,
    granted_avg: dur(granted),
    granted_avg_ms: granted,
    used_avg: dur(used),
    used_avg_ms: used,
    used_share:
      grants === 0 || !c || c.grantedSum === 0
        ? null
        : Math.round((c.usedSum / c.grantedSum) * 1000) / 1000,
    ended_early: c?.endedEarly ?? 0,
    still_active: c?.stillActive ?? 0,
  };
}

function breakGlassItem(b: BreakGlassRow, now: number): RoleReport['break_glass']['items'][number] {
  let reviewer: Who | null = null;
  if (b.reviewer) {
    try {
      const r = JSON.parse(b.reviewer) as Who;
      reviewer = { iss: r.iss, sub: r.sub, name: r.name ?? null };
    } catch {}
  }
  const status =
    b.verdict === 'acknowledged' || b.verdict === 'flagged'
      ? b.verdict
      : b.reviewBy !== null && b.reviewBy < now
        ? 'overdue'
        : 'unreviewed';
  return {
    request_id: b.id,
    requester: b.requester,
    at: iso(b.createdAt)!,
    reason: b.reason,
    status,
    reviewer,
    reviewed_at: iso(b.reviewedAt),
    comment: b.comment,
  };
}

/** What an auditor should look at first, one sentence each. */
function findingsOf(r: Report): Finding[] {
  const out: Finding[] = [];
  for (const m of r.mutual_approvals) {
    out.push({
      kind: 'mutual_approval',
      role: r.role,
      message: `${nameOf(m.a)} and ${nameOf(m.b)} approved each other's requests (${nameOf(m.a)} approved ${nameOf(m.b)} ${m.a_approved_b} ${times(m.a_approved_b)}, ${nameOf(m.b)} approved ${nameOf(m.a)} ${m.b_approved_a} ${times(m.b_approved_a)})`,
    });
  }
  for (const role of r.roles) {
    for (const f of role.frequent) {
      out.push({
        kind: 'frequent_requester',
        role: role.role,
        message: `${nameOf(f.person)} requested ${role.role} ${f.most_within} times within ${r.frequent_threshold.within} (${f.requests} in the period)`,
      });
    }
    for (const b of role.break_glass.items) {
      if (b.status === 'overdue')
        out.push({
          kind: 'break_glass_overdue',
          role: role.role,
          message: `${nameOf(b.requester)}'s break-glass use of ${role.role} (${b.request_id}) is still unreviewed past its deadline`,
        });
      else if (b.status === 'flagged')
        out.push({
          kind: 'break_glass_flagged',
          role: role.role,
          message: `${nameOf(b.requester)}'s break-glass use of ${role.role} (${b.request_id}) was flagged${b.reviewer ? ` by ${nameOf(b.reviewer)}` : ''}${b.comment ? `: ${b.comment}` : ''}`,
        });
    }
    for (const e of role.unused.entries) {
      if (e.known === 0) continue;
      out.push({
        kind: 'unused_entry',
        role: role.role,
        message: `${e.entry} makes ${e.known} ${e.known === 1 ? 'identity' : 'identities'} eligible for ${role.role}; none requested it in the period`,
      });
    }
  }
  return out;
}

const times = (n: number) => (n === 1 ? 'time' : 'times');
