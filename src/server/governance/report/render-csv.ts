import type { Report, Who } from '../../../api/governance.js';

/**
 * The report as CSV (RFC 4180) in long form, one figure per row, so a spreadsheet pivots it any
 * way: `section,role,subject,metric,value`. Every cell is quoted when it needs to be, and a
 * cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, carriage return at
 * its start) gets a leading apostrophe (OWASP's advice on CSV injection): a name or reason is
 * other people's text.
 */

const FORMULA = /^[=+\-@\t\r]/;

export function csvCell(value: string | number | boolean | null): string {
  if (value === null) return '';
  let text = String(value);
  if (typeof value === 'string' && FORMULA.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const who = (w: Who) => (w.name ? `${w.name} <${w.sub}>` : w.sub);

export function renderCsv(r: Report): string {
  const rows: (string | number | boolean | null)[][] = [
    ['section', 'role', 'subject', 'metric', 'value'],
  ];
  const add = (
    section: string,
    role: string | null,
    subject: string | null,
    metric: string,
    value: string | number | boolean | null,
  ) => rows.push([section, role, subject, metric, value]);
  add('report', null, null, 'since', r.since);
  add('report', null, null, 'until', r.until);
  add(
    'report',
    null,
    null,
    'frequent_threshold',
    `${r.frequent_threshold.count}/${r.frequent_threshold.within}`,
  );
  for (const f of r.findings) add('finding', f.role, f.kind, 'message', f.message);
  for (const m of r.mutual_approvals) {
    add('mutual_approval', r.role, `${who(m.a)} -> ${who(m.b)}`, 'approvals', m.a_approved_b);
    add('mutual_approval', r.role, `${who(m.b)} -> ${who(m.a)}`, 'approvals', m.b_approved_a);
  }
  for (const role of r.roles) {
    const name = role.role;
    for (const [k, v] of Object.entries(role.requests)) add('requests', name, null, k, v);
    for (const [k, v] of Object.entries(role.time_to_decision))
      add('time_to_decision', name, null, k, v);
    for (const [k, v] of Object.entries(role.durations)) add('durations', name, null, k, v);
    for (const p of role.approver_pairs) {
      const subject = `${who(p.reviewer)} -> ${who(p.requester)}`;
      add('approver_pair', name, subject, 'approvals', p.approvals);
      if (p.mutual) add('approver_pair', name, subject, 'mutual', true);
    }
    const bg = role.break_glass;
    for (const k of ['uses', 'acknowledged', 'flagged', 'unreviewed', 'overdue'] as const)
      add('break_glass', name, null, k, bg[k]);
    for (const b of bg.items) {
      add('break_glass_use', name, b.request_id, 'requester', who(b.requester));
      add('break_glass_use', name, b.request_id, 'at', b.at);
      add('break_glass_use', name, b.request_id, 'status', b.status);
      if (b.reviewer) add('break_glass_use', name, b.request_id, 'reviewer', who(b.reviewer));
    }
    for (const f of role.frequent) {
      add('frequent', name, who(f.person), 'most_within', f.most_within);
      add('frequent', name, who(f.person), 'requests', f.requests);
    }
    const c = role.commands;
    for (const k of ['runs', 'people', 'failed', 'late'] as const)
      add('commands', name, null, k, c[k]);
    for (const p of c.programs) {
      add('program', name, p.program, 'runs', p.runs);
      add('program', name, p.program, 'people', p.people);
      add('program', name, p.program, 'failed', p.failed);
    }
    for (const e of role.unused.entries) {
      add('unused_entry', name, e.entry, 'known', e.known);
      add('unused_entry', name, e.entry, 'used', e.used);
    }
    for (const p of role.unused.people)
      add('unused_person', name, who(p.person), 'last_request_at', p.last_request_at);
    add('unused', name, null, 'people_total', role.unused.people_total);
  }
  return `${rows.map((row) => row.map(csvCell).join(',')).join('\r\n')}\r\n`;
}
