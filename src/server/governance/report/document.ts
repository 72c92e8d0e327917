import { formatDuration } from '../../../api/duration.js';
import type { Report, RoleReport, Who } from '../../../api/governance.js';
import { barChart, type Chart, niceDuration } from './charts.js';

/**
 * The report as a document: headings, paragraphs, lists, tables and charts of plain text, in the
 * order a person reads them. The text, Markdown and HTML renderers draw this one document, so
 * every format says the same thing; each escapes for its own medium (none of the text here is
 * escaped, and names, reasons and comments are other people's text).
 */

export type Block =
  | { kind: 'heading'; level: 1 | 2 | 3; text: string; id?: string }
  | { kind: 'para'; text: string; tone?: 'warn' | 'muted' }
  | { kind: 'list'; items: string[]; tone?: 'warn' }
  | { kind: 'table'; headers: string[]; rows: string[][]; numeric: boolean[] }
  | { kind: 'chart'; chart: Chart };

export interface ReportDocument {
  title: string;
  subtitle: string;
  blocks: Block[];
}

const who = (w: Who) => w.name ?? w.sub;
const whoLong = (w: Who) => (w.name ? `${w.name} (${w.sub})` : w.sub);
const day = (iso: string | null) => (iso ? iso.replace(/T(\d\d:\d\d).*$/, ' $1Z') : 'never');
const pct = (v: number | null) => (v === null ? '-' : `${Math.round(v * 100)}%`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
/** At most two units (`1h30m`, `4m12s`): enough for an axis or a bar's label. */
const shortDuration = (ms: number) =>
  ms <= 0 ? '0' : formatDuration(ms).replace(/^(\d+[a-z](?:\d+[a-z])?).*$/, '$1');

export function reportDocument(r: Report): ReportDocument {
  const blocks: Block[] = [];
  const scope = r.role ? `role ${r.role}` : plural(r.roles.length, 'role');
  const subtitle = `${day(r.since)} to ${day(r.until)} (${r.period}), ${scope}`;
  blocks.push({
    kind: 'para',
    text: `${plural(r.totals.requests, 'request')}, ${r.totals.approved} approved, ${r.totals.denied} denied; ${plural(r.totals.break_glass, 'break-glass use')}; ${plural(r.totals.command_runs, 'command')} run under grants.`,
  });

  blocks.push({ kind: 'heading', level: 2, text: 'Findings', id: 'findings' });
  blocks.push(
    r.findings.length === 0
      ? { kind: 'para', text: 'Nothing stands out in this period.', tone: 'muted' }
      : { kind: 'list', items: r.findings.map((f) => f.message), tone: 'warn' },
  );

  if (r.roles.length > 0) blocks.push(...charts(r));

  for (const role of r.roles) blocks.push(...roleBlocks(r, role));

  blocks.push({
    kind: 'para',
    tone: 'muted',
    text: `Generated ${day(r.generated_at)} by jitctl. Time to decision is the nearest-rank median and 90th percentile of requests people decided. Used time runs from a grant's start until it was revoked or its window ended. A person is listed as requesting unusually often at ${r.frequent_threshold.count} requests for one role within ${r.frequent_threshold.within}. Commands are those jitctl exec and shell reported under grants.`,
  });
  return { title: 'Access report', subtitle, blocks };
}

function charts(r: Report): Block[] {
  const rows = r.roles;
  const out: Block[] = [];
  out.push({
    kind: 'chart',
    chart: barChart({
      id: 'outcomes',
      title: 'Requests by outcome',
      summary: `Requests per role in the period by outcome: ${rows.map((x) => `${x.role} ${x.requests.filed}`).join(', ')}`,
      stacked: true,
      format: (v) => String(Math.round(v)),
      series: [
        { key: 'people', label: 'approved by people', cls: 'c-approved' },
        { key: 'auto', label: 'approved automatically', cls: 'c-auto' },
        { key: 'denied', label: 'denied', cls: 'c-denied' },
        { key: 'expired', label: 'expired unanswered', cls: 'c-expired' },
        { key: 'other', label: 'cancelled or pending', cls: 'c-other' },
      ],
      rows: rows.map((x) => ({
        label: x.role,
        values: [
          x.requests.approved - x.requests.approved_automatically,
          x.requests.approved_automatically,
          x.requests.denied,
          x.requests.expired,
          x.requests.cancelled + x.requests.pending,
        ],
      })),
    }),
  });
  const decided = rows.filter((x) => x.time_to_decision.decided > 0);
  if (decided.length > 0)
    out.push({
      kind: 'chart',
      chart: barChart({
        id: 'decision-time',
        title: 'Time to decision',
        summary: `Median and 90th percentile time from request to decision: ${decided.map((x) => `${x.role} ${x.time_to_decision.median} and ${x.time_to_decision.p90}`).join(', ')}`,
        stacked: false,
        format: shortDuration,
        nice: niceDuration,
        series: [
          { key: 'median', label: 'median', cls: 'c-median' },
          { key: 'p90', label: '90th percentile', cls: 'c-p90' },
        ],
        rows: decided.map((x) => ({
          label: x.role,
          values: [x.time_to_decision.median_ms ?? 0, x.time_to_decision.p90_ms ?? 0],
        })),
      }),
    });
  const used = rows.filter((x) => x.durations.grants > 0);
  if (used.length > 0)
    out.push({
      kind: 'chart',
      chart: barChart({
        id: 'durations',
        title: 'Granted and used time per grant (average)',
        summary: `Average granted and used time: ${used.map((x) => `${x.role} ${x.durations.granted_avg} granted, ${x.durations.used_avg} used`).join(', ')}`,
        stacked: false,
        format: shortDuration,
        nice: niceDuration,
        series: [
          { key: 'granted', label: 'granted', cls: 'c-granted' },
          { key: 'used', label: 'used', cls: 'c-used' },
        ],
        rows: used.map((x) => ({
          label: x.role,
          values: [x.durations.granted_avg_ms ?? 0, x.durations.used_avg_ms ?? 0],
        })),
      }),
    });
  const programs = rows
    .flatMap((x) => x.commands.programs.map((p) => ({ label: `${x.role}: ${p.program}`, p })))
    .sort((a, b) => b.p.runs - a.p.runs)
    .slice(0, 12);
  if (programs.length > 0)
    out.push({
      kind: 'chart',
      chart: barChart({
        id: 'commands',
        title: 'Commands run under grants',
        summary: `Most run programs: ${programs.map((x) => `${x.label} ${x.p.runs}`).join(', ')}`,
        stacked: true,
        format: (v) => String(Math.round(v)),
        series: [
          { key: 'ok', label: 'succeeded', cls: 'c-approved' },
          { key: 'failed', label: 'failed', cls: 'c-denied' },
        ],
        rows: programs.map((x) => ({
          label: x.label,
          values: [x.p.runs - x.p.failed, x.p.failed],
        })),
      }),
    });
  return out;
}

function roleBlocks(r: Report, role: RoleReport): Block[] {
  const out: Block[] = [];
  const q = role.requests;
  out.push({ kind: 'heading', level: 2, text: role.role, id: `role-${role.role}` });
  if (role.description) out.push({ kind: 'para', text: role.description, tone: 'muted' });
  if (!role.in_policy)
    out.push({ kind: 'para', text: 'This role is no longer in the policy.', tone: 'warn' });
  out.push({
    kind: 'table',
    headers: [
      'requests',
      'approved',
      'automatically',
      'denied',
      'expired',
      'cancelled',
      'pending',
      'revoked',
    ],
    numeric: [true, true, true, true, true, true, true, true],
    rows: [
      [
        q.filed,
        q.approved,
        q.approved_automatically,
        q.denied,
        q.expired,
        q.cancelled,
        q.pending,
        q.revoked,
      ].map(String),
    ],
  });
  const t = role.time_to_decision;
  out.push({
    kind: 'para',
    text:
      t.decided === 0
        ? 'Time to decision: no request was decided by people.'
        : `Time to decision: median ${t.median}, 90th percentile ${t.p90} (${plural(t.decided, 'request')} decided by people).`,
  });
  const d = role.durations;
  out.push({
    kind: 'para',
    text:
      d.grants === 0
        ? `Durations: no grant ended in the period${d.still_active ? ` (${d.still_active} still active)` : ''}.`
        : `Durations: asked ${d.asked_avg} on average, granted ${d.granted_avg} with extensions, used ${d.used_avg} (${pct(d.used_share)} of the time granted) over ${plural(d.grants, 'grant')}; ${d.ended_early} ended early by revocation${d.still_active ? `; ${d.still_active} still active` : ''}.`,
  });

  out.push({ kind: 'heading', level: 3, text: 'Who approved whom' });
  out.push(
    role.approver_pairs.length === 0
      ? { kind: 'para', text: 'No approvals by people.', tone: 'muted' }
      : {
          kind: 'table',
          headers: ['approver', 'requester', 'approvals', 'finding'],
          numeric: [false, false, true, false],
          rows: role.approver_pairs.map((p) => [
            who(p.reviewer),
            who(p.requester),
            String(p.approvals),
            p.mutual ? 'approved each other' : '',
          ]),
        },
  );

  const bg = role.break_glass;
  out.push({ kind: 'heading', level: 3, text: 'Break-glass' });
  if (bg.uses === 0) {
    out.push({ kind: 'para', text: 'No break-glass use.', tone: 'muted' });
  } else {
    out.push({
      kind: 'para',
      text: `${plural(bg.uses, 'use')}: ${bg.acknowledged} acknowledged, ${bg.flagged} flagged, ${bg.unreviewed} awaiting review, ${bg.overdue} overdue.`,
      ...(bg.overdue + bg.flagged > 0 ? { tone: 'warn' as const } : {}),
    });
    out.push({
      kind: 'table',
      headers: ['request', 'requester', 'at', 'reason', 'review'],
      numeric: [false, false, false, false, false],
      rows: bg.items.map((b) => [
        b.request_id,
        who(b.requester),
        day(b.at),
        b.reason ?? '',
        b.status === 'acknowledged' || b.status === 'flagged'
          ? `${b.status}${b.reviewer ? ` by ${who(b.reviewer)}` : ''}${b.comment ? `: ${b.comment}` : ''}`
          : b.status === 'overdue'
            ? 'OVERDUE, not reviewed'
            : 'not reviewed yet',
      ]),
    });
  }

  out.push({ kind: 'heading', level: 3, text: 'Requested unusually often' });
  out.push(
    role.frequent.length === 0
      ? {
          kind: 'para',
          text: `Nobody filed ${r.frequent_threshold.count} or more requests within ${r.frequent_threshold.within}.`,
          tone: 'muted',
        }
      : {
          kind: 'table',
          headers: ['person', `most within ${r.frequent_threshold.within}`, 'in the period'],
          numeric: [false, true, true],
          rows: role.frequent.map((f) => [
            whoLong(f.person),
            String(f.most_within),
            String(f.requests),
          ]),
        },
  );

  const c = role.commands;
  out.push({ kind: 'heading', level: 3, text: 'Commands run' });
  if (c.runs === 0) {
    out.push({ kind: 'para', text: 'No command was reported under this role.', tone: 'muted' });
  } else {
    out.push({
      kind: 'para',
      text: `${plural(c.runs, 'run')} by ${plural(c.people, 'person', 'people')}; ${c.failed} failed${c.late ? `; ${c.late} reported late` : ''}.`,
    });
    out.push({
      kind: 'table',
      headers: ['program', 'runs', 'people', 'failed', 'last run'],
      numeric: [false, true, true, true, false],
      rows: c.programs.map((p) => [
        p.program,
        String(p.runs),
        String(p.people),
        String(p.failed),
        day(p.last_at),
      ]),
    });
  }

  const u = role.unused;
  out.push({ kind: 'heading', level: 3, text: 'Eligible but unused (least-privilege candidates)' });
  if (!role.in_policy) {
    out.push({ kind: 'para', text: 'Not in the policy: nobody is eligible.', tone: 'muted' });
  } else if (u.entries.length === 0 && u.people_total === 0) {
    out.push({
      kind: 'para',
      text: 'Every entry and every eligible person the broker knows requested this role in the period.',
      tone: 'muted',
    });
  } else {
    if (u.entries.length > 0)
      out.push({
        kind: 'table',
        headers: ['policy entry', 'known identities', 'requested in the period'],
        numeric: [false, true, true],
        rows: u.entries.map((e) => [e.entry, String(e.known), String(e.used)]),
      });
    if (u.people.length > 0)
      out.push({
        kind: 'table',
        headers: ['eligible, no request in the period', 'through', 'last request', 'last seen'],
        numeric: [false, false, false, false],
        rows: u.people.map((p) => [
          whoLong(p.person),
          p.via.join(', '),
          day(p.last_request_at),
          day(p.last_seen_at),
        ]),
      });
    if (u.people_total > u.people.length)
      out.push({
        kind: 'para',
        tone: 'muted',
        text: `${u.people_total - u.people.length} more eligible identities filed no request (the JSON report lists the first ${u.people.length}).`,
      });
  }
  return out;
}
