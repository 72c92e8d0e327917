import type { AccessRequest, AuditEvent, Identity } from '../../api/schemas.js';
import { relative, safe } from '../../api/text.js';
import type { Transition } from './history.js';
import { breakGlassFlag, extensionProgress, progressText } from './present-lifecycle.js';

/**
 * What the pages show, computed here so the templates only print: the request as `jitctl
 * approve` shows it (src/cli/request-view.ts), in sentences a person reads on a phone. Text that
 * came from people or providers (names, reasons, tickets, comments, roles) goes through `safe()`
 * (control and bidi characters made visible, as in the terminal); HTML escaping is the template
 * engine's job, never done here. Times are UTC, written out, with a relative hint.
 */

export interface TimeText {
  iso: string;
  /** "14:02 UTC" today, "2025-03-01 14:02 UTC" otherwise. */
  text: string;
  /** "3m ago", "in 59m" */
  relative: string;
}

export function timeText(ms: number, now: number): TimeText {
  const iso = new Date(ms).toISOString();
  const day = iso.slice(0, 10);
  const hm = iso.slice(11, 16);
  const today = new Date(now).toISOString().slice(0, 10) === day;
  return { iso, text: today ? `${hm} UTC` : `${day} ${hm} UTC`, relative: relative(ms, now) };
}

/** "Lee Lead (lee)", or the subject alone. */
export function who(identity: Identity | null): string {
  if (!identity) return 'the broker';
  const sub = safe(identity.sub);
  if (!identity.name) return sub;
  const name = safe(identity.name);
  return name === sub ? name : `${name} (${sub})`;
}

export const whoShort = (identity: Identity) => safe(identity.name ?? identity.sub);

export type Tone = 'pending' | 'scheduled' | 'approved' | 'ended' | 'other';

const LABELS: Readonly<Record<string, string>> = {
  pending: 'Pending',
  scheduled: 'Scheduled',
  approved: 'Approved',
  denied: 'Denied',
  cancelled: 'Cancelled',
  expired: 'Expired',
  revoked: 'Revoked',
};

const labelOf = (state: string) => (Object.hasOwn(LABELS, state) ? LABELS[state]! : safe(state));

/** How a state is coloured; a state this version does not know is neither good nor bad. */
const toneOf = (state: string): Tone =>
  state === 'pending'
    ? 'pending'
    : state === 'scheduled'
      ? 'scheduled'
      : state === 'approved'
        ? 'approved'
        : Object.hasOwn(LABELS, state)
          ? 'ended'
          : 'other';

export interface ReviewLine {
  who: string;
  decision: string;
  at: TimeText;
  comment: string | null;
}

export interface RequestView {
  id: string;
  role: string;
  roleDescription: string | null;
  state: string;
  stateLabel: string;
  tone: Tone;
  /** One sentence: where the request stands ("Approved by Lee Lead at 14:02 UTC; …"). */
  headline: string;
  requester: { name: string | null; sub: string; iss: string };
  duration: string;
  reason: string | null;
  ticket: string | null;
  filed: TimeText;
  /** "Expires" while pending, "Valid until" once approved, "Ended" window otherwise. */
  until: { label: string; at: TimeText } | null;
  approvals: number;
  approvalsRequired: number;
  reviews: ReviewLine[];
  approvers: string[];
  fingerprint: string;
}

export function requestView(
  r: AccessRequest,
  now: number,
  roleDescription: string | null,
  transition: Transition | undefined,
): RequestView {
  const approvals = r.reviews.filter((x) => x.decision === 'approve');
  const denials = r.reviews.filter((x) => x.decision === 'deny');
  const end = Date.parse(r.expires_at);
  const approvers = r.approvers.map((a) => safe(a));
  const approverText = approvers.length > 0 ? approvers.join(' or ') : 'nobody';
  const at = (iso: string) => timeText(Date.parse(iso), now).text;
  const by = transition?.actor ? ` by ${whoShort(transition.actor)}` : '';
  const when = transition ? ` at ${at(transition.at)}` : '';
  let headline: string;
  let until: RequestView['until'] = null;
  const start = r.starts_at ? timeText(Date.parse(r.starts_at), now) : null;
  // Who approved: a person, a rule of the policy, break-glass (nobody), or `approvals: 0`.
  const approvedBy = transition?.actor
    ? `Approved${by}`
    : r.break_glass
      ? 'Taken as break-glass access, without approval,'
      : r.decided_by_rule
        ? `Approved automatically by rule ${safe(r.decided_by_rule)}`
        : 'Approved automatically';
  switch (r.state) {
    case 'pending': {
      const parts = [
        r.approvals_by
          ? `Waiting for approval: ${progressText(r.approvals_by)}`
          : `Waiting for approval: ${approvals.length} of ${r.approvals_required} from ${approverText}`,
      ];
      if (start) parts.push(`starts at ${start.text} (${start.relative}), approvable now`);
      if (denials.length > 0)
        parts.push(`${denials.length} ${denials.length === 1 ? 'denial' : 'denials'}`);
      parts.push(end > now ? `expires ${relative(end, now)}` : 'expiring now');
      headline = `${parts.join('; ')}.`;
      until = { label: 'Expires', at: timeText(end, now) };
      break;
    }
    case 'approved': {
      const extended = r.extended ? `, extended by ${safe(r.extended)}` : '';
      const asked =
        r.extension?.state === 'pending'
          ? `; ${safe(r.extension.duration)} more asked, waiting for review`
          : '';
      const valid = `valid until ${at(r.expires_at)} (${relative(end, now)})${extended}${asked}`;
      headline =
        transition?.type === 'request.approved'
          ? `${approvedBy}${when}; ${valid}.`
          : transition?.type === 'request.activated'
            ? `Approved; its scheduled window opened${when}; ${valid}.`
            : `Approved; ${valid}.`;
      until = { label: 'Valid until', at: timeText(end, now) };
      break;
    }
    case 'scheduled':
      headline = `${transition?.type === 'request.approved' ? `${approvedBy}${when}` : 'Approved'}; starts at ${start?.text ?? '?'} (${start?.relative ?? '?'}) and is valid until ${at(r.expires_at)}. No credential before the start.`;
      until = { label: 'Valid until', at: timeText(end, now) };
      break;
    case 'denied':
      headline =
        !transition?.actor && denials.length === 0 && r.decided_by_rule
          ? `Denied automatically by rule ${safe(r.decided_by_rule)}${when}.`
          : `Denied${by || (denials[0] ? ` by ${whoShort(denials[0].reviewer)}` : '')}${when}.`;
      break;
    case 'cancelled':
      headline = `Cancelled${by}${when}.`;
      break;
    case 'revoked':
      headline = `Revoked${by}${when}; its credentials are no longer valid at relying parties that check revocations.`;
      until = { label: 'Window would have ended', at: timeText(end, now) };
      break;
    case 'expired':
      headline =
        approvals.length >= r.approvals_required && approvals.length > 0
          ? `Expired${when}: its window ended.`
          : `Expired${when} before enough approvals (${approvals.length} of ${r.approvals_required}).`;
      break;
    default:
      // A state this version does not know (added later): shown by name, with its last change.
      headline = transition
        ? `${safe(r.state)} since ${at(transition.at)}${by}.`
        : `${safe(r.state)}.`;
  }
  return {
    id: safe(r.id),
    role: safe(r.role),
    roleDescription: roleDescription === null ? null : safe(roleDescription),
    state: safe(r.state),
    stateLabel: labelOf(r.state),
    tone: toneOf(r.state),
    headline,
    requester: {
      name: r.requester.name === null ? null : safe(r.requester.name),
      sub: safe(r.requester.sub),
      iss: safe(r.requester.iss),
    },
    duration: safe(r.duration),
    reason: r.reason ? safe(r.reason) : null,
    ticket: r.ticket ? safe(r.ticket) : null,
    filed: timeText(Date.parse(r.created_at), now),
    until,
    approvals: approvals.length,
    approvalsRequired: r.approvals_required,
    reviews: r.reviews.map((x) => ({
      who: who(x.reviewer),
      decision: x.decision === 'approve' ? 'approved' : 'denied',
      at: timeText(Date.parse(x.at), now),
      comment: x.comment ? safe(x.comment) : null,
    })),
    approvers,
    fingerprint: safe(r.fingerprint),
  };
}

/** One line of a list on the home page. */
export interface ListItem {
  id: string;
  role: string;
  requester: string;
  state: string;
  tone: Tone;
  duration: string;
  reason: string | null;
  age: string;
  /** "1 of 2 approvals", "valid until 14:32 UTC", or nothing. */
  detail: string;
  /** "break-glass", "break-glass: review overdue", …: a second, louder pill. */
  flag: { text: string; tone: string } | null;
}

export function listItem(r: AccessRequest, now: number): ListItem {
  const approvals = r.reviews.filter((x) => x.decision === 'approve').length;
  const end = Date.parse(r.expires_at);
  const start = r.starts_at ? timeText(Date.parse(r.starts_at), now) : null;
  const starts = start ? `starts ${start.text} (${start.relative})` : '';
  const detail =
    r.state === 'pending'
      ? [
          r.approvals_by
            ? progressText(r.approvals_by)
            : `${approvals} of ${r.approvals_required} approvals`,
          starts,
          `expires ${relative(end, now)}`,
        ]
      : r.state === 'scheduled'
        ? [starts, `valid until ${timeText(end, now).text}`]
        : r.state === 'approved'
          ? [
              `valid until ${timeText(end, now).text} (${relative(end, now)})`,
              r.extension?.state === 'pending'
                ? `asks for ${safe(r.extension.duration)} more: ${extensionProgress(r.extension)}`
                : '',
            ]
          : [];
  return {
    id: safe(r.id),
    role: safe(r.role),
    requester: who(r.requester),
    state: labelOf(r.state),
    tone: toneOf(r.state),
    duration: safe(r.duration),
    reason: r.reason ? safe(r.reason) : null,
    age: relative(Date.parse(r.created_at), now),
    detail: detail.filter(Boolean).join('; '),
    flag: breakGlassFlag(r),
  };
}

/** One audit event as a row of the audit page. */
export interface AuditLine {
  seq: number;
  at: string;
  type: string;
  requestId: string | null;
  actor: string;
  data: string;
  hash: string;
}

export function auditLine(e: AuditEvent): AuditLine {
  return {
    seq: e.seq,
    at: safe(e.at),
    type: safe(e.type),
    requestId: e.request_id === null ? null : safe(e.request_id),
    actor: e.actor ? who(e.actor) : 'the broker',
    data: safe(JSON.stringify(e.data)),
    hash: safe(e.hash.slice(0, 16)),
  };
}
