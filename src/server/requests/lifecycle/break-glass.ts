import { ErrorCode } from '../../../api/errors.js';
import type { BreakGlassReviewBody } from '../../../api/schemas.js';
import { forbidden, HttpError, invalidState } from '../../errors.js';
import type { RolePolicy } from '../../policy/types.js';
import type { RequestRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf } from './change.js';
import { nextRevision, type Who } from './who.js';

/**
 * The review after the fact of a break-glass grant: an approver of the role (never the person who
 * used it) acknowledges it, or flags it with a comment. Flagging is a high-priority event and does
 * not end the grant: whoever flags decides separately whether to revoke.
 */

export function checkBreakGlassReviewer(row: RequestRow, who: Who): void {
  if (who.requester) {
    throw new HttpError(
      403,
      ErrorCode.SelfReview,
      'you cannot review your own break-glass access',
      `ask one of ${(JSON.parse(row.approvers) as string[]).join(', ')} to review it`,
    );
  }
  if (!who.approver) {
    throw forbidden(
      `you may not review break-glass access to role ${row.role}`,
      `its approvers are ${(JSON.parse(row.approvers) as string[]).join(', ')}`,
    );
  }
}

export function onAcknowledge(
  row: RequestRow,
  role: RolePolicy | undefined,
  who: Who,
  body: BreakGlassReviewBody,
  now: number,
): Change {
  checkBreakGlassReviewer(row, who);
  if (!row.break_glass) {
    throw invalidState(
      `request ${row.id} is not break-glass access; there is nothing to acknowledge`,
      row.state === 'pending' ? `review it: jitctl approve ${row.id}` : undefined,
    );
  }
  if (row.break_glass_verdict !== null) {
    throw invalidState(
      `request ${row.id}'s break-glass access was already ${row.break_glass_verdict}`,
    );
  }
  const comment = body.comment?.trim() ? body.comment : null;
  if (comment === null && (body.verdict === 'flag' || role?.requireReviewComment)) {
    throw new HttpError(
      400,
      ErrorCode.CommentRequired,
      body.verdict === 'flag'
        ? 'flagging break-glass access needs a comment saying what was wrong'
        : `role ${row.role} requires a comment with each review`,
      'pass --comment "…"',
    );
  }
  const verdict = body.verdict === 'flag' ? 'flagged' : 'acknowledged';
  const patch = {
    ...nextRevision(row),
    break_glass_verdict: verdict,
    break_glass_reviewer: JSON.stringify(who.identity),
    break_glass_comment: comment,
    break_glass_reviewed_at: now,
  } as const;
  const data = {
    comment,
    used_at: iso(row.created_at),
    review_by: iso(row.break_glass_review_by ?? now),
    overdue: row.break_glass_review_by !== null && row.break_glass_review_by < now,
    state: row.state,
  };
  return verdict === 'flagged'
    ? changeOf('break-glass-flag', row, patch, {
        'break_glass.flagged': { actor: who.identity, data: { ...data, priority: 'high' } },
      })
    : changeOf('break-glass-acknowledge', row, patch, {
        'break_glass.acknowledged': { actor: who.identity, data },
      });
}
