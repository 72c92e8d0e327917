import { accessReviewPageUrl } from '../../api/links.js';
import type { Revocation } from '../../api/schemas.js';

/**
 * What each event means to the people it concerns: one table, keyed by event type. The dispatcher
 * reads committed audit events, looks their type up here, and routes them; a type missing from the
 * table is never notified. Adding an event type (an extension, a scheduled start, break-glass, an
 * access-review reminder) is one entry: its headline, who hears of it by email, its priority.
 *
 * Headlines are plain text built from facts already cut to length; each channel escapes them for
 * itself (Slack mrkdwn, HTML through the template engine), so an entry never escapes anything.
 */

/** Who, beyond fixed lists and webhooks, hears of an event. */
export type Audience =
  /** The approvers the request named when it was filed, as far as their emails are known. */
  | 'approvers'
  /** The person (or workload) who filed the request, when their email is known. */
  | 'requester'
  /** The broker's `security_contacts` (emails and webhooks), whatever the policy routes. */
  | 'security_contacts';

export type Priority = 'normal' | 'high';

/** What the dispatcher knows about one event, as plain text (already cut to length). */
export interface EventFacts {
  type: string;
  /** Null for events about no request (an access review); their facts come from the event's data. */
  requestId: string | null;
  role: string;
  /** The requester's display name (their subject when the identity provider gives no name). */
  requester: string;
  duration: string;
  reason: string | null;
  ticket: string | null;
  /** Who caused the event: a reviewer, a revoker; null for the broker itself (expiry, auto). */
  actor: string | null;
  /** Whether the actor is the requester (they cancelled or revoked their own access). */
  actorIsRequester: boolean;
  decision: 'approve' | 'deny' | null;
  comment: string | null;
  /** End of the credential window of an approved request (RFC 3339), else null. */
  expiresAt: string | null;
  /** The audit event's own data, for entries that need more than the common facts. */
  data: Readonly<Record<string, unknown>>;
  /**
   * `request.revoked`: what relying parties act on (the grant's credentials that were still
   * valid, who revoked it, when, why), carried as is in the JSON webhook.
   */
  revocation?: Revocation | undefined;
}

export interface NotificationEventSpec {
  /** One line saying what happened, plain text. */
  headline(f: EventFacts): string;
  /** Who hears of it by email (and the security contacts); webhooks hear of every event. */
  audiences(f: EventFacts): Audience[];
  /** `high` is carried in every channel (Slack's first line, the JSON, the email's Importance). */
  priority?: Priority;
  /**
   * Events that open a credential window schedule the expiry reminder for its end (once per grant
   * and window end, whatever the number of replicas).
   */
  schedulesReminder?: boolean;
  /** Scheduled by the broker rather than read from the audit log (the expiry reminder). */
  scheduled?: boolean;
  /**
   * Who `approvers` means for this event, as policy principals (`group:auditors`): for events
   * that ask other people to act than the request's approvers (an access review's reviewers), or
   * that have no request. Default: the approvers the request named when it was filed.
   */
  approvers?(f: EventFacts): string[];
  /** The page the notification links to. Default: the request's review page. */
  link?(f: EventFacts, publicUrl: string): string | null;
}

const note = (s: string | null) => (s ? `: ${s}` : '');
/** A text fact from an event's own data (already cut to length by the dispatcher). */
const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** An access review's reviewers (policy principals), from its event's data. */
const reviewersOf = (f: EventFacts): string[] =>
  Array.isArray(f.data.reviewers)
    ? f.data.reviewers.filter((r): r is string => typeof r === 'string')
    : [];
const campaignRoles = (f: EventFacts): string => {
  const roles = Array.isArray(f.data.roles)
    ? f.data.roles.filter((r) => typeof r === 'string')
    : [];
  if (roles.length === 0) return '';
  return roles.length <= 3 ? ` (${roles.join(', ')})` : ` (${roles.length} roles)`;
};
const campaignLink = (f: EventFacts, publicUrl: string): string | null => {
  const id = text(f.data.campaign_id);
  return id ? accessReviewPageUrl(publicUrl, id) : null;
};

export const NOTIFICATION_EVENTS = {
  'request.created': {
    headline: (f) =>
      `${f.requester} requests ${f.role} for ${f.duration}${note(f.reason)}${f.ticket ? ` [${f.ticket}]` : ''}`,
    // An auto-approved request (approvals: 0) asks nobody to review it.
    audiences: (f) => (f.data.approvals_required === 0 ? [] : ['approvers']),
  },
  'review.recorded': {
    headline: (f) =>
      `${f.actor ?? 'a reviewer'} ${f.decision === 'deny' ? 'denies' : 'approves'} ${f.requester}'s request for ${f.role}${note(f.comment)}`,
    audiences: () => [],
  },
  'request.approved': {
    headline: (f) =>
      f.actor
        ? `${f.actor} approved ${f.requester}'s request for ${f.role} (${f.duration})${note(f.comment)}`
        : `${f.requester}'s request for ${f.role} (${f.duration}) was approved automatically`,
    // Told of a decision somebody made; an automatic approval answered the requester at once.
    audiences: (f) => (f.actor ? ['requester'] : []),
    schedulesReminder: true,
  },
  'request.denied': {
    headline: (f) =>
      `${f.actor ?? 'a reviewer'} denied ${f.requester}'s request for ${f.role}${note(f.comment)}`,
    audiences: () => ['requester'],
  },
  'request.cancelled': {
    headline: (f) => `${f.requester} cancelled their request for ${f.role}`,
    audiences: () => [],
  },
  'request.expired': {
    headline: (f) =>
      f.data.from === 'pending'
        ? `${f.requester}'s request for ${f.role} expired before anyone reviewed it`
        : `${f.requester}'s access to ${f.role} ended`,
    // A grant ending on time was announced by its reminder; an unanswered request is news.
    audiences: (f) => (f.data.from === 'pending' ? ['requester'] : []),
  },
  'request.revoked': {
    headline: (f) =>
      `${f.actor ?? 'someone'} revoked ${f.requester}'s access to ${f.role}${note(f.comment)}`,
    audiences: (f) => (f.actorIsRequester ? [] : ['requester']),
  },
  // The lifecycle's events (src/server/requests/lifecycle): scheduled starts, extensions and
  // break-glass. Break-glass is high priority: approvers and the security contacts hear of it.
  'request.activated': {
    headline: (f) => `${f.requester}'s scheduled access to ${f.role} starts now (${f.duration})`,
    audiences: () => ['requester'],
  },
  'extension.requested': {
    headline: (f) =>
      `${f.requester} asks to extend their access to ${f.role} by ${text(f.data.duration) ?? 'more time'}${note(text(f.data.reason))}`,
    audiences: (f) => (f.data.approvals_required === 0 ? [] : ['approvers']),
  },
  'extension.approved': {
    headline: (f) =>
      `${f.actor ?? 'policy'} extended ${f.requester}'s access to ${f.role} until ${text(f.data.expires_at) ?? f.expiresAt ?? 'later'}${note(f.comment)}`,
    audiences: (f) => (f.actor ? ['requester'] : []),
    // The window has a new end: its reminder is scheduled anew (keyed by the end).
    schedulesReminder: true,
  },
  'extension.denied': {
    headline: (f) =>
      `${f.actor ?? 'a reviewer'} denied extending ${f.requester}'s access to ${f.role}${note(f.comment)}`,
    audiences: () => ['requester'],
  },
  'extension.cancelled': {
    headline: (f) => `${f.requester} withdrew their extension of ${f.role}`,
    audiences: () => [],
  },
  'extension.expired': {
    headline: (f) => `${f.requester}'s extension of ${f.role} lapsed with the grant`,
    audiences: () => [],
  },
  'break_glass.used': {
    headline: (f) =>
      `BREAK-GLASS: ${f.requester} took ${f.role} without approval${note(f.reason)}; review it by ${text(f.data.review_by) ?? 'the deadline'}`,
    audiences: () => ['approvers', 'security_contacts'],
    priority: 'high',
    schedulesReminder: true,
  },
  'break_glass.acknowledged': {
    headline: (f) =>
      `${f.actor ?? 'an approver'} acknowledged ${f.requester}'s break-glass use of ${f.role}${note(f.comment)}`,
    audiences: () => [],
  },
  'break_glass.flagged': {
    headline: (f) =>
      `FLAGGED: ${f.actor ?? 'an approver'} flagged ${f.requester}'s break-glass use of ${f.role}${note(f.comment)}`,
    audiences: () => ['requester', 'security_contacts'],
    priority: 'high',
  },
  'break_glass.overdue': {
    headline: (f) => `OVERDUE: ${f.requester}'s break-glass use of ${f.role} is still unreviewed`,
    audiences: () => ['approvers', 'security_contacts'],
    priority: 'high',
  },
  // Access reviews (src/server/governance/access-reviews): the campaign's reviewers hear of its
  // opening, of the reminder before the due date and of it being overdue; its link is the
  // campaign's page. The broker writes the reminder and overdue events from its sweep.
  'access_review.started': {
    headline: (f) =>
      `${f.actor ?? 'an auditor'} opened access review ${text(f.data.campaign_id) ?? ''}${campaignRoles(f)}: please decide by ${text(f.data.due_at) ?? 'the due date'}`,
    audiences: () => ['approvers'],
    approvers: reviewersOf,
    link: campaignLink,
  },
  'access_review.decided': {
    headline: (f) =>
      `${f.actor ?? 'a reviewer'} decided to ${text(f.data.decision) ?? 'decide'} ${text(f.data.subject) ?? 'an item'} for ${f.role || 'a role'} in access review ${text(f.data.campaign_id) ?? ''}${note(f.comment)}`,
    audiences: () => [],
    link: campaignLink,
  },
  'access_review.closed': {
    headline: (f) =>
      `${f.actor ?? 'a reviewer'} closed access review ${text(f.data.campaign_id) ?? ''}${campaignRoles(f)}: ${Number(f.data.kept ?? 0)} kept, ${Number(f.data.removed ?? 0)} removed, ${Number(f.data.undecided ?? 0)} undecided`,
    audiences: () => [],
    link: campaignLink,
  },
  'access_review.reminder': {
    headline: (f) =>
      `Reminder: access review ${text(f.data.campaign_id) ?? ''}${campaignRoles(f)} is due ${text(f.data.due_at) ?? 'soon'}; ${Number(f.data.undecided ?? 0)} items undecided`,
    audiences: () => ['approvers'],
    approvers: reviewersOf,
    link: campaignLink,
  },
  'access_review.overdue': {
    headline: (f) =>
      `OVERDUE: access review ${text(f.data.campaign_id) ?? ''}${campaignRoles(f)} was due ${text(f.data.due_at) ?? 'earlier'}; ${Number(f.data.undecided ?? 0)} items undecided`,
    audiences: () => ['approvers'],
    approvers: reviewersOf,
    link: campaignLink,
    priority: 'high',
  },
  'request.expiring': {
    headline: (f) => `${f.requester}'s access to ${f.role} ends at ${f.expiresAt ?? 'soon'}`,
    audiences: () => ['requester'],
    scheduled: true,
  },
} satisfies Record<string, NotificationEventSpec>;

export type NotificationEventType = keyof typeof NOTIFICATION_EVENTS;

/** Every event type a policy's `events:` may name. */
export const NOTIFICATION_EVENT_TYPES = Object.keys(NOTIFICATION_EVENTS) as NotificationEventType[];

/** The expiry reminder's type: scheduled from the approval, not read from the audit log. */
export const REMINDER_EVENT: NotificationEventType = 'request.expiring';

export function eventSpec(type: string): NotificationEventSpec | undefined {
  return Object.hasOwn(NOTIFICATION_EVENTS, type)
    ? (NOTIFICATION_EVENTS as Record<string, NotificationEventSpec>)[type]
    : undefined;
}
