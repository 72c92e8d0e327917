import { createHash } from 'node:crypto';
import { canonicalJson } from '../../api/audit-chain.js';
import { formatDuration } from '../../api/duration.js';
import type { AccessRequest, Review } from '../../api/schemas.js';
import type { RequestRow, ReviewRow } from '../store/schema.js';

/** Rows to the wire objects of src/api/schemas.ts. */

export const iso = (ms: number) => new Date(ms).toISOString();

/**
 * What a reviewer decides on, digested: who asks, for which role, how long and why. A review that
 * names the fingerprint it was shown is refused if the request differs (it never changes after
 * creation today, but the check keeps a reviewer from approving something they did not see if
 * that ever changes, and costs nothing). 64 bits, grouped for reading aloud.
 */
export function fingerprintOf(r: {
  id: string;
  role: string;
  requester_iss: string;
  requester_sub: string;
  duration_ms: number;
  reason: string | null;
  ticket: string | null;
  created_at: number;
}): string {
  const digest = createHash('sha256')
    .update(
      canonicalJson({
        id: r.id,
        role: r.role,
        requester: { iss: r.requester_iss, sub: r.requester_sub },
        duration_ms: r.duration_ms,
        reason: r.reason,
        ticket: r.ticket,
        created_at: r.created_at,
      }),
    )
    .digest('hex');
  return digest.slice(0, 16).replace(/(.{4})(?=.)/g, '$1-');
}

/**
 * The long poll's ETag: state and the number of reviews, so a waiter wakes on a transition and on
 * each review (the waiting CLI shows "1 of 2 approvals").
 */
export function etagOf(row: Pick<RequestRow, 'state' | 'review_count'>): string {
  return `"${row.state}.${row.review_count}"`;
}

export function reviewToWire(r: ReviewRow): Review {
  return {
    reviewer: { iss: r.reviewer_iss, sub: r.reviewer_sub, name: r.reviewer_name },
    decision: r.decision,
    comment: r.comment,
    at: iso(r.at),
  };
}

export function toWire(row: RequestRow, reviews: ReviewRow[]): AccessRequest {
  return {
    id: row.id,
    role: row.role,
    state: row.state,
    requester: { iss: row.requester_iss, sub: row.requester_sub, name: row.requester_name },
    duration: formatDuration(row.duration_ms),
    reason: row.reason,
    ticket: row.ticket,
    created_at: iso(row.created_at),
    expires_at: iso(row.expires_at),
    approvals_required: row.approvals_required,
    reviews: reviews.map(reviewToWire),
    approvers: JSON.parse(row.approvers) as string[],
    fingerprint: row.fingerprint,
  };
}
