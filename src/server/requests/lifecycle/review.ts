import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type { ReviewBody } from '../../../api/schemas.js';
import { forbidden, HttpError, invalidState } from '../../errors.js';
import type { RolePolicy } from '../../policy/types.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf } from './change.js';
import { approvalsOf, denialsOf, roleOf, type Who } from './who.js';

/** Reviews of a pending request: who may, and when one approves or denies it. */

/** Whether `who` may review requests of this role at all (before the request's state matters). */
export function checkReviewer(row: RequestRow, role: RolePolicy | undefined, who: Who): RolePolicy {
  const r = roleOf(row, role, 'reviewed');
  checkReviewerOf(row, who);
  return r;
}

function checkReviewerOf(row: RequestRow, who: Who): void {
  const approvers = (JSON.parse(row.approvers) as string[]).join(', ');
  // Self-review is refused before anything else, whatever groups the token claims: identity is
  // issuer + subject, so a second token for the same person is the same person.
  if (who.requester) {
    throw new HttpError(
      403,
      ErrorCode.SelfReview,
      'you cannot review your own request',
      `ask one of ${approvers} to review it`,
    );
  }
  if (!who.approver) {
    throw forbidden(
      `you may not review requests for role ${row.role}`,
      `its approvers are ${approvers}`,
    );
  }
}

/** Whether the request, as it is now, takes this review from `who`. */
export function checkReview(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  who: Who,
  body: ReviewBody,
): void {
  checkReviewerOf(row, who);
  if (row.state !== 'pending') {
    throw invalidState(
      `request ${row.id} is ${row.state}; only pending requests can be reviewed`,
      row.state === 'approved' ? 'to end it early, revoke it' : undefined,
    );
  }
  if (body.fingerprint !== undefined && body.fingerprint !== row.fingerprint) {
    throw new HttpError(
      409,
      ErrorCode.FingerprintMismatch,
      `request ${row.id} no longer matches fingerprint ${body.fingerprint} (it is ${row.fingerprint})`,
      'show the request again and review what it says now',
    );
  }
  if (
    reviews.some((r) => r.reviewer_iss === who.identity.iss && r.reviewer_sub === who.identity.sub)
  )
    throw alreadyReviewed();
}

export function alreadyReviewed(): HttpError {
  return new HttpError(409, ErrorCode.AlreadyReviewed, 'you have already reviewed this request');
}

/**
 * A review of a pending request: recorded, and the request approved or denied when it reaches a
 * threshold (denials are counted first only for a deny, approvals only for an approve).
 */
export function onReview(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  who: Who,
  body: ReviewBody,
  now: number,
): Change {
  checkReview(row, reviews, who, body);
  const comment = body.comment ?? null;
  const review = {
    reviewer_iss: who.identity.iss,
    reviewer_sub: who.identity.sub,
    reviewer_name: who.identity.name,
    decision: body.decision,
    comment,
    at: now,
  };
  const approvals = approvalsOf(reviews) + (body.decision === 'approve' ? 1 : 0);
  const denials = denialsOf(reviews) + (body.decision === 'deny' ? 1 : 0);
  const recorded = {
    actor: who.identity,
    data: { decision: body.decision, comment, approvals, denials },
  };
  const patch = { review_count: row.review_count + 1 };
  if (body.decision === 'deny' && denials >= row.denials_required) {
    return changeOf(
      'deny',
      row,
      { ...patch, ended_at: now },
      {
        'review.recorded': recorded,
        'request.denied': {
          actor: who.identity,
          data: { denials, denials_required: row.denials_required },
        },
      },
      review,
    );
  }
  if (body.decision === 'approve' && approvals >= row.approvals_required) {
    const expiresAt = now + row.duration_ms;
    return changeOf(
      'approve',
      row,
      { ...patch, approved_at: now, expires_at: expiresAt },
      {
        'review.recorded': recorded,
        'request.approved': {
          actor: who.identity,
          data: {
            approvals,
            approvals_required: row.approvals_required,
            duration: formatDuration(row.duration_ms),
            expires_at: iso(expiresAt),
          },
        },
      },
      review,
    );
  }
  return changeOf('review', row, patch, { 'review.recorded': recorded }, review);
}
