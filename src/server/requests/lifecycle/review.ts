import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type { ReviewBody } from '../../../api/schemas.js';
import { forbidden, HttpError, invalidState } from '../../errors.js';
import { matchesAny, parsePrincipal } from '../../policy/principal.js';
import type { RolePolicy } from '../../policy/types.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import {
  describeProgress,
  isApproved,
  progressOf,
  readGroups,
  type StoredGroup,
} from './approvals.js';
import { type Change, changeOf } from './change.js';
import { approvalsOf, denialsOf, nextRevision, roleOf, roundOf, type Who } from './who.js';

/**
 * Reviews: of a pending request (round 0) and of the extension waiting on a live grant (its
 * round). Same rules for both: an approver of the role, never the requester, one review per
 * person per round, the step-up of reviewing, a comment where the role requires one, and for
 * multi-party approvals an approval only from someone in a group still needed.
 */

/** What a review lands on now: the request, or its pending extension. */
export type ReviewTarget = { kind: 'request' } | { kind: 'extension'; round: number };

export function targetOf(row: RequestRow): ReviewTarget | undefined {
  if (row.state === 'pending') return { kind: 'request' };
  if (row.state === 'approved' && row.extension_state === 'pending') {
    return { kind: 'extension', round: row.extension_round };
  }
  return undefined;
}

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

/** The multi-party groups of the review target, if any. */
function groupsFor(row: RequestRow, target: ReviewTarget): StoredGroup[] | null {
  return readGroups(
    target.kind === 'request' ? row.approval_groups : row.extension_approval_groups,
  );
}

/** The groups of `groups` the reviewer is in (recorded with the review). */
function countsFor(groups: StoredGroup[] | null, who: Who): string[] {
  if (!groups) return [];
  return groups
    .filter((g) => {
      const p = parsePrincipal(g.from);
      return 'principal' in p && matchesAny([p.principal], who.caller);
    })
    .map((g) => g.from);
}

/** Whether the request, as it is now, takes this review from `who`; returns what it lands on. */
export function checkReview(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  who: Who,
  body: ReviewBody,
  role: RolePolicy | undefined,
): ReviewTarget {
  checkReviewerOf(row, who);
  const target = targetOf(row);
  if (!target) {
    throw invalidState(
      `request ${row.id} is ${row.state}; only pending requests (and extensions waiting on a grant) can be reviewed`,
      row.break_glass && row.break_glass_verdict === null
        ? `it is a break-glass grant awaiting review afterwards: acknowledge or flag it (jitctl approve/deny ${row.id})`
        : row.state === 'approved'
          ? 'to end it early, revoke it'
          : undefined,
    );
  }
  const expected = target.kind === 'request' ? row.fingerprint : row.extension_fingerprint;
  if (body.fingerprint !== undefined && body.fingerprint !== expected) {
    throw new HttpError(
      409,
      ErrorCode.FingerprintMismatch,
      target.kind === 'extension' && body.fingerprint === row.fingerprint
        ? `request ${row.id} is approved; what awaits review is its extension ${expected}, not the request ${row.fingerprint}`
        : `request ${row.id} no longer matches fingerprint ${body.fingerprint} (it is ${expected})`,
      'show the request again and review what it says now',
    );
  }
  const round = target.kind === 'request' ? 0 : target.round;
  const mine = roundOf(reviews, round);
  if (mine.some((r) => r.reviewer_iss === who.identity.iss && r.reviewer_sub === who.identity.sub))
    throw alreadyReviewed();
  if (role?.requireReviewComment && (body.comment === undefined || body.comment.trim() === '')) {
    throw new HttpError(
      400,
      ErrorCode.CommentRequired,
      `role ${row.role} requires a comment with each review`,
      'say why, e.g. --comment "matches INC-4211; change is reviewed"',
    );
  }
  const groups = groupsFor(row, target);
  if (groups && body.decision === 'approve') {
    // Useful when it fills one more place, possibly by moving an earlier approver to another of
    // their groups (someone in both groups approved first, and this one is in only one).
    const filled = (reviews: readonly ReviewRow[]) =>
      progressOf(groups, reviews).reduce((n, p) => n + p.approved, 0);
    const hypothetical: ReviewRow = {
      request_id: row.id,
      reviewer_iss: who.identity.iss,
      reviewer_sub: who.identity.sub,
      reviewer_name: who.identity.name,
      decision: 'approve',
      comment: null,
      at: 0,
      round,
      counts_for: JSON.stringify(countsFor(groups, who)),
    };
    if (filled([...mine, hypothetical]) <= filled(mine)) {
      const missing = progressOf(groups, mine).filter((p) => p.approved < p.required);
      throw forbidden(
        `your approval would not count: ${row.id} still needs ${describeProgress(missing)}, and you are in none of those`,
        'ask someone in the missing group to approve; you may still deny',
      );
    }
  }
  return target;
}

export function alreadyReviewed(): HttpError {
  return new HttpError(409, ErrorCode.AlreadyReviewed, 'you have already reviewed this request');
}

/**
 * A review: recorded, and the request (or its extension) approved or denied when it reaches a
 * threshold. An approved request opens its window now, or at its scheduled start if that is later;
 * an approved extension moves the grant's end.
 */
export function onReview(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  who: Who,
  body: ReviewBody,
  role: RolePolicy | undefined,
  now: number,
): Change {
  const target = checkReview(row, reviews, who, body, role);
  const round = target.kind === 'request' ? 0 : target.round;
  const groups = groupsFor(row, target);
  const comment = body.comment ?? null;
  const review = {
    reviewer_iss: who.identity.iss,
    reviewer_sub: who.identity.sub,
    reviewer_name: who.identity.name,
    decision: body.decision,
    comment,
    at: now,
    round,
    counts_for: groups ? JSON.stringify(countsFor(groups, who)) : null,
  };
  const after = [...roundOf(reviews, round), { request_id: row.id, ...review }];
  const approvals = approvalsOf(after);
  const denials = denialsOf(after);
  const required =
    target.kind === 'request' ? row.approvals_required : (row.extension_approvals_required ?? 1);
  const approved = body.decision === 'approve' && isApproved(required, groups, after);
  const denied = body.decision === 'deny' && denials >= row.denials_required;
  const recorded = {
    actor: who.identity,
    data: {
      decision: body.decision,
      comment,
      approvals,
      denials,
      ...(round > 0 ? { extension: round } : {}),
      ...(groups ? { approvals_by: progressOf(groups, after) } : {}),
    },
  };
  if (target.kind === 'extension')
    return onExtensionReview(row, who, review, recorded, approved, denied);

  const patch = { review_count: row.review_count + 1 };
  if (denied) {
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
  if (approved) {
    const scheduled = row.starts_at !== null && row.starts_at > now;
    const expiresAt = (scheduled ? row.starts_at! : now) + row.duration_ms;
    return changeOf(
      scheduled ? 'approve-scheduled' : 'approve',
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
            ...(scheduled ? { starts_at: iso(row.starts_at!) } : {}),
          },
        },
      },
      review,
    );
  }
  return changeOf('review', row, patch, { 'review.recorded': recorded }, review);
}

function onExtensionReview(
  row: RequestRow,
  who: Who,
  review: Omit<ReviewRow, 'request_id'>,
  recorded: { actor: Who['identity']; data: Record<string, unknown> },
  approved: boolean,
  denied: boolean,
): Change {
  const bump = nextRevision(row);
  if (denied) {
    return changeOf(
      'extension-deny',
      row,
      { ...bump, extension_state: 'denied' },
      {
        'review.recorded': recorded,
        'extension.denied': {
          actor: who.identity,
          data: { round: row.extension_round, expires_at: iso(row.expires_at) },
        },
      },
      review,
    );
  }
  if (approved) {
    const ms = row.extension_ms ?? 0;
    const expiresAt = row.expires_at + ms;
    return changeOf(
      'extension-approve',
      row,
      {
        ...bump,
        extension_state: 'approved',
        expires_at: expiresAt,
        extended_ms: row.extended_ms + ms,
      },
      {
        'review.recorded': recorded,
        'extension.approved': {
          actor: who.identity,
          data: {
            round: row.extension_round,
            duration: formatDuration(ms),
            previous_expires_at: iso(row.expires_at),
            expires_at: iso(expiresAt),
          },
        },
      },
      review,
    );
  }
  return changeOf('extension-review', row, bump, { 'review.recorded': recorded }, review);
}
