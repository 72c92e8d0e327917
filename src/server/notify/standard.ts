import type { Notice } from './message.js';
import { slackText } from './slack.js';

/**
 * jitctl's own webhook event: the facts as JSON, picked field by field (never spread, so nothing
 * unexpected can ride along), with the review page's `link` and a Slack-compatible `text` line.
 * `event_id` is the `webhook-id` header's value: the same on every retry, for deduplication.
 */
export function standardEvent(id: string, n: Notice): Record<string, unknown> {
  return {
    event_id: id,
    type: n.type,
    priority: n.priority,
    request_id: n.requestId,
    role: n.role,
    requester: n.requester,
    duration: n.duration,
    reason: n.reason,
    ticket: n.ticket,
    reviewer: n.reviewer,
    decision: n.decision,
    comment: n.comment,
    at: n.at,
    expires_at: n.expiresAt,
    link: n.link,
    text: slackText(n),
    // What a relying party needs to refuse the grant's credentials at once.
    ...(n.revocation
      ? {
          revocation: {
            request_id: n.revocation.request_id,
            role: n.revocation.role,
            jtis: n.revocation.jtis,
            revoked_at: n.revocation.revoked_at,
            revoked_by: n.revocation.revoked_by,
            reason: n.revocation.reason,
            expires_at: n.revocation.expires_at,
          },
        }
      : {}),
  };
}
