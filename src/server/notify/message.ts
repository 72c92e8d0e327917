import { reviewPageUrl } from '../../api/links.js';
import type { Revocation } from '../../api/schemas.js';
import { safe } from '../../cli/output.js';
import type { EventFacts, NotificationEventSpec, Priority } from './events.js';

/**
 * One notification before it is rendered for a channel: the facts of the event (raw, as the JSON
 * event carries them), its headline (display-safe), its priority and the review page's link.
 * Renderers (slack.ts, standard.ts, email.ts) take it from here; none of them sees a token,
 * because there is no field for one.
 */
export interface Notice {
  type: string;
  priority: Priority;
  requestId: string | null;
  role: string;
  requester: string;
  duration: string;
  reason: string | null;
  ticket: string | null;
  /** Who approved, denied or revoked; null for the broker itself. */
  reviewer: string | null;
  decision: 'approve' | 'deny' | null;
  comment: string | null;
  /** When it happened, RFC 3339. */
  at: string;
  /** End of the credential window when one is open. */
  expiresAt: string | null;
  /** `<broker>/ui/requests/<id>`: the page where the request is shown and decided. */
  link: string | null;
  /** One line, control characters shown as escapes and long text cut: safe to display. */
  headline: string;
  /** `request.revoked`: the revocation as `GET /v1/revocations` lists it. */
  revocation?: Revocation | undefined;
}

/** Longest reason, comment or ticket shown in a message (the page shows all of it). */
export const TEXT_LIMIT = 300;
const NAME_LIMIT = 100;

/** Other people's text for display: control and bidi characters as escapes, cut to `limit`. */
export function display(s: string | null | undefined, limit = TEXT_LIMIT): string {
  const clean = safe(s ?? '');
  return clean.length > limit ? `${clean.slice(0, limit)}…` : clean;
}

export function buildNotice(
  facts: EventFacts,
  spec: NotificationEventSpec | undefined,
  at: string,
  publicUrl: string,
): Notice {
  const opt = (s: string | null, limit = TEXT_LIMIT) => (s ? display(s, limit) : null);
  const shown: EventFacts = {
    ...facts,
    requester: display(facts.requester, NAME_LIMIT),
    role: display(facts.role, NAME_LIMIT),
    duration: display(facts.duration, 40),
    reason: opt(facts.reason),
    ticket: opt(facts.ticket, NAME_LIMIT),
    actor: opt(facts.actor, NAME_LIMIT),
    comment: opt(facts.comment),
    expiresAt: opt(facts.expiresAt, 40),
  };
  const headline = spec
    ? spec.headline(shown)
    : `${display(facts.type, 60)}: ${shown.requester}, ${shown.role}`;
  return {
    type: facts.type,
    priority: spec?.priority ?? 'normal',
    requestId: facts.requestId,
    role: facts.role,
    requester: facts.requester,
    duration: facts.duration,
    reason: facts.reason,
    ticket: facts.ticket,
    reviewer: facts.actor,
    decision: facts.decision,
    comment: facts.comment,
    at,
    expiresAt: facts.expiresAt,
    link: spec?.link
      ? spec.link(facts, publicUrl)
      : facts.requestId
        ? reviewPageUrl(publicUrl, facts.requestId)
        : null,
    headline,
    ...(facts.revocation ? { revocation: facts.revocation } : {}),
  };
}
