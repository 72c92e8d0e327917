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
      const parts = [
        `${approvals(request).length} of ${request.approvals_required} approvals from ${approverList(request)}`,
      ];
      const d = denials(request).length;
      if (d > 0) parts.push(`${d} ${d === 1 ? 'denial' : 'denials'}`);
      parts.push(end > now ? `expires ${relative(end, now)}` : 'expiring now');
      return parts.join('; ');
    }
    case 'approved':
      return end > now
        ? `valid until ${clockTime(end)} (${relative(end, now).replace(/^in /, '')} left)`
        : `its window ended at ${clockTime(end)}`;
    default:
      return '';
  }
}

/** The line a waiting `jitctl request` shows (spinner text or a plain log line). */
export function waitingLine(request: AccessRequest, now: number): string {
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
  if (request.reviews.length === 0) rows.push(['Reviews', 'none yet']);
  request.reviews.forEach((r, i) => {
    rows.push([i === 0 ? 'Reviews' : '', reviewLine(r, now)]);
  });
  rows.push(['Fingerprint', safe(request.fingerprint)]);
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return `${rows.map(([label, value]) => `${label.padEnd(width)}${value}`.trimEnd()).join('\n')}\n`;
}

export const LIST_HEADERS = ['id', 'role', 'requester', 'state', 'age', 'duration', 'reason'];

/** One row of `jitctl list`. */
export function listRow(request: AccessRequest, now: number): string[] {
  const age = relative(Date.parse(request.created_at), now).replace(/ ago$/, '');
  const state =
    request.state === 'pending'
      ? `pending ${approvals(request).length}/${request.approvals_required}`
      : request.state;
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
