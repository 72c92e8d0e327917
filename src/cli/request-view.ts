import type { AccessRequest, Identity, Review } from '../api/schemas.js';
import { clockTime, relative, safe } from './output.js';

/**
 * How a request is shown to people: one place for `show`, `approve`, `deny`, `revoke`, `list` and
 * the waiting line of `request`/`wait`, so that every view says the same thing the same way.
 * Everything in a request that a person typed or a provider named (reason, ticket, comments,
 * names, role) passes through {@link safe}: a reason holding terminal escape sequences is shown
 * as visible escapes, never interpreted.
 */

/** "Alice Developer (alice)", or the subject alone when there is no name. */
export function who(identity: Identity): string {
  const sub = safe(identity.sub);
  if (!identity.name) return sub;
  const name = safe(identity.name);
  return name === sub ? name : `${name} (${sub})`;
}

/** The short form for tables and one-liners: the name, else the subject. */
export function whoShort(identity: Identity): string {
  return safe(identity.name ?? identity.sub);
}

/** Whether `request` was filed by `me` (the same subject at the same issuer). */
export function filedBy(request: AccessRequest, me: Pick<Identity, 'iss' | 'sub'>): boolean {
  return request.requester.iss === me.iss && request.requester.sub === me.sub;
}

export function approvals(request: AccessRequest): Review[] {
  return request.reviews.filter((r) => r.decision === 'approve');
}

export function denials(request: AccessRequest): Review[] {
  return request.reviews.filter((r) => r.decision === 'deny');
}

/** "group:leads or user:lee@example.com" */
export function approverList(request: AccessRequest): string {
  return request.approvers.length > 0
    ? request.approvers.map((a) => safe(a)).join(' or ')
    : 'nobody (the policy names no approvers)';
}

/** "0 of 1 approvals from group:leads; expires in 59m" (pending), or what the state means now. */
export function progressOf(request: AccessRequest, now: number): string {
  const end = Date.parse(request.expires_at);
  switch (request.state) {
    case 'pending': {
      const parts = [approvalProgress(request)];
      if (request.starts_at) parts.push(`starts ${when(Date.parse(request.starts_at), now)}`);
      const d = denials(request).length;
      if (d > 0) parts.push(`${d} ${d === 1 ? 'denial' : 'denials'}`);
      parts.push(end > now ? `expires ${relative(end, now)}` : 'expiring now');
      return parts.join('; ');
    }
    case 'scheduled': {
      const start = Date.parse(request.starts_at ?? request.expires_at);
      return `starts ${when(start, now)}, valid until ${clockTime(end)}`;
    }
    case 'approved': {
      const parts = [
        end > now
          ? `valid until ${clockTime(end)} (${relative(end, now).replace(/^in /, '')} left)`
          : `its window ended at ${clockTime(end)}`,
      ];
      const ext = request.extension;
      if (ext?.state === 'pending') {
        parts.push(
          `extension +${safe(ext.duration)} waiting for review (${extensionProgress(ext)})`,
        );
      }
      if (request.break_glass && request.break_glass.verdict === null) {
        parts.push(
          request.break_glass.overdue
            ? 'break-glass: review OVERDUE'
            : `break-glass: to be reviewed by ${clockTime(Date.parse(request.break_glass.review_by))}`,
        );
      }
      return parts.join('; ');
    }
    default:
      return '';
  }
}

/** "14:00 (in 2h)" */
function when(at: number, now: number): string {
  return `${clockTime(at)} (${relative(at, now)})`;
}

/**
 * "0 of 1 approvals from group:leads", or per group for multi-party approvals: "still needs
 * 1 from group:security (leads: 1 of 1)".
 */
export function approvalProgress(request: AccessRequest): string {
  const groups = request.approvals_by;
  if (!groups) {
    return `${approvals(request).length} of ${request.approvals_required} approvals from ${approverList(request)}`;
  }
  const missing = groups.filter((g) => g.approved < g.required);
  const done = groups.filter((g) => g.approved >= g.required);
  const need = missing.map((g) => `${g.required - g.approved} from ${safe(g.from)}`).join(' and ');
  const have = done.map((g) => `${safe(g.from)} ✔`).join(', ');
  return missing.length === 0
    ? `all groups approved (${have})`
    : `still needs ${need}${have ? ` (${have})` : ''}`;
}

function extensionProgress(ext: NonNullable<AccessRequest['extension']>): string {
  if (ext.approvals_by) {
    return ext.approvals_by
      .map((g) => `${g.approved} of ${g.required} from ${safe(g.from)}`)
      .join(', ');
  }
  const n = ext.reviews.filter((r) => r.decision === 'approve').length;
  return `${n} of ${ext.approvals_required} approvals`;
}

/** The line a waiting `jitctl request` shows (spinner text or a plain log line). */
export function waitingLine(request: AccessRequest, now: number): string {
  if (request.state === 'scheduled') {
    return `waiting for the start of ${safe(request.id)} (${progressOf(request, now)})`;
  }
  return `waiting for approval of ${safe(request.id)} (${progressOf(request, now)})`;
}

/**
 * Why a request ended, for the error of a waiting `jitctl request`: the state, who decided, and
 * the reviewer's comment (the person waiting wants to know why).
 */
export function endingOf(request: AccessRequest): string {
  const id = safe(request.id);
  const role = safe(request.role);
  switch (request.state) {
    case 'denied': {
      const by = denials(request);
      const names = by.map((r) => whoShort(r.reviewer)).join(', ');
      const comments = by
        .filter((r) => r.comment)
        .map((r) => `${whoShort(r.reviewer)}: "${safe(r.comment)}"`);
      if (request.decided_by_rule && by.length === 0) {
        return `${id} (${role}) was denied by rule ${safe(request.decided_by_rule)} of the policy`;
      }
      return (
        `${id} (${role}) was denied${names ? ` by ${names}` : ''}` +
        (comments.length > 0 ? ` (${comments.join('; ')})` : '')
      );
    }
    case 'cancelled':
      return `${id} (${role}) was cancelled by its requester`;
    case 'expired': {
      const approved = approvals(request).length >= request.approvals_required;
      return approved
        ? `${id} (${role}) expired: its window ended at ${clockTime(Date.parse(request.expires_at))}`
        : `${id} (${role}) expired before enough approvals (${approvals(request).length} of ${request.approvals_required}) at ${clockTime(Date.parse(request.expires_at))}`;
    }
    case 'revoked':
      return `${id} (${role}) was revoked`;
    case 'approved':
      return `${id} (${role}) is approved`;
    case 'pending':
      return `${id} (${role}) is pending`;
    default:
      return `${id} (${role}) is ${safe(request.state)}`;
  }
}

function reviewLine(r: Review, now: number): string {
  const at = Date.parse(r.at);
  const verb = r.decision === 'approve' ? 'approved' : 'denied';
  const comment = r.comment ? `: "${safe(r.comment)}"` : '';
  return `${who(r.reviewer)} ${verb} ${clockTime(at)} (${relative(at, now)})${comment}`;
}

/**
 * The whole request, labelled lines, for `show` and before a review is confirmed: requester,
 * role, duration, reason, ticket, when filed, reviews so far, fingerprint.
 */
export function detailView(request: AccessRequest, now: number): string {
  const created = Date.parse(request.created_at);
  const progress = progressOf(request, now);
  const rows: Array<[string, string]> = [
    ['Request', safe(request.id)],
    ['Role', safe(request.role)],
    ['State', progress ? `${request.state}: ${progress}` : request.state],
    ['Requester', who(request.requester)],
    ['Duration', safe(request.duration)],
    ['Reason', request.reason === null || request.reason === '' ? '-' : safe(request.reason)],
    ['Ticket', request.ticket === null || request.ticket === '' ? '-' : safe(request.ticket)],
    ['Filed', `${clockTime(created)} (${relative(created, now)}), ${safe(request.created_at)}`],
    ['Approvers', `${approverList(request)}; ${request.approvals_required} needed`],
  ];
  rows.push(...lifecycleRows(request, now));
  if (request.reviews.length === 0) rows.push(['Reviews', 'none yet']);
  request.reviews.forEach((r, i) => {
    rows.push([i === 0 ? 'Reviews' : '', reviewLine(r, now)]);
  });
  rows.push(['Fingerprint', safe(request.fingerprint)]);
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return `${rows.map(([label, value]) => `${label.padEnd(width)}${value}`.trimEnd()).join('\n')}\n`;
}

/** Rows of `show` for scheduled starts, rules, multi-party approvals, extensions and break-glass. */
function lifecycleRows(request: AccessRequest, now: number): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  if (request.starts_at) rows.push(['Starts', when(Date.parse(request.starts_at), now)]);
  if (request.approvals_by) {
    rows.push([
      'Approvals',
      request.approvals_by
        .map((g) => `${g.approved} of ${g.required} from ${safe(g.from)}`)
        .join(', '),
    ]);
  }
  if (request.decided_by_rule) rows.push(['Decided by', `rule ${safe(request.decided_by_rule)}`]);
  if (request.extended) rows.push(['Extended', `by ${safe(request.extended)} in all`]);
  const ext = request.extension;
  if (ext) {
    const reason = ext.reason ? `: "${safe(ext.reason)}"` : '';
    rows.push([
      'Extension',
      `#${ext.round} +${safe(ext.duration)} ${ext.state}${ext.state === 'pending' ? ` (${extensionProgress(ext)})` : ''}${reason}`,
    ]);
    for (const r of ext.reviews) rows.push(['', reviewLine(r, now)]);
    if (ext.state === 'pending') rows.push(['', `fingerprint ${safe(ext.fingerprint)}`]);
  }
  const bg = request.break_glass;
  if (bg) {
    const verdict = bg.verdict
      ? `${bg.verdict} by ${bg.reviewer ? who(bg.reviewer) : 'someone'}${bg.comment ? `: "${safe(bg.comment)}"` : ''}`
      : `awaiting review by ${clockTime(Date.parse(bg.review_by))}${bg.overdue ? ' (OVERDUE)' : ''}`;
    rows.push(['Break-glass', verdict]);
  }
  return rows;
}

export const LIST_HEADERS = ['id', 'role', 'requester', 'state', 'age', 'duration', 'reason'];

/** One row of `jitctl list`. */
export function listRow(request: AccessRequest, now: number): string[] {
  const age = relative(Date.parse(request.created_at), now).replace(/ ago$/, '');
  let state: string =
    request.state === 'pending'
      ? `pending ${approvals(request).length}/${request.approvals_required}`
      : request.state === 'scheduled' && request.starts_at
        ? `scheduled ${clockTime(Date.parse(request.starts_at))}`
        : safe(request.state);
  if (request.extension?.state === 'pending') state += ` +${safe(request.extension.duration)}?`;
  if (request.break_glass) {
    state += request.break_glass.verdict
      ? ` (break-glass ${request.break_glass.verdict})`
      : request.break_glass.overdue
        ? ' (break-glass OVERDUE)'
        : ' (break-glass)';
  }
  return [
    safe(request.id),
    safe(request.role),
    whoShort(request.requester),
    state,
    age.startsWith('in ') ? '0s' : age,
    safe(request.duration),
    request.reason ? safe(request.reason) : '-',
  ];
}

/** "Alice Developer (alice) asks for prod-deploy for 15m" */
export function summaryOf(request: AccessRequest): string {
  return `${who(request.requester)} asks for ${safe(request.role)} for ${safe(request.duration)}`;
}
