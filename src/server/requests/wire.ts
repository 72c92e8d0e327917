import { createHash } from 'node:crypto';
import { canonicalJson } from '../../api/audit-chain.js';
import { formatDuration } from '../../api/duration.js';
import type { AccessRequest, BreakGlass, Extension, Identity, Review } from '../../api/schemas.js';
import type { RequestRow, ReviewRow } from '../store/schema.js';
import { progressOf, readGroups } from './lifecycle/approvals.js';

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
  /** Included only when set, so requests without them keep the fingerprint they always had. */
  starts_at?: number | null;
  break_glass?: boolean;
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
        ...(r.starts_at ? { starts_at: r.starts_at } : {}),
        ...(r.break_glass ? { break_glass: true } : {}),
      }),
    )
    .digest('hex');
  return digest.slice(0, 16).replace(/(.{4})(?=.)/g, '$1-');
}

/**
 * The long poll's ETag: state and the number of reviews, so a waiter wakes on a transition and on
 * each review (the waiting CLI shows "1 of 2 approvals").
 */
export function etagOf(row: Pick<RequestRow, 'state' | 'review_count' | 'revision'>): string {
  // The revision counts changes that keep state and reviews (an extension asked for or decided,
  // a break-glass review): a running `jitctl exec` learns a new end through it.
  const revision = row.revision ?? 0;
  return revision > 0
    ? `"${row.state}.${row.review_count}.${revision}"`
    : `"${row.state}.${row.review_count}"`;
}

export function reviewToWire(r: ReviewRow): Review {
  return {
    reviewer: { iss: r.reviewer_iss, sub: r.reviewer_sub, name: r.reviewer_name },
    decision: r.decision,
    comment: r.comment,
    at: iso(r.at),
  };
}

/** Reviews of all rounds; the request's own are round 0. */
export function toWire(row: RequestRow, reviews: ReviewRow[]): AccessRequest {
  const own = reviews.filter((r) => (r.round ?? 0) === 0);
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
    reviews: own.map(reviewToWire),
    approvers: JSON.parse(row.approvers) as string[],
    fingerprint: row.fingerprint,
    ...lifecycleFields(row, reviews, own),
  };
}

function lifecycleFields(
  row: RequestRow,
  reviews: ReviewRow[],
  own: ReviewRow[],
): Partial<AccessRequest> {
  const groups = readGroups(row.approval_groups);
  const awaiting: string[] = [];
  if (row.state === 'pending') awaiting.push('approval');
  if (row.state === 'scheduled') awaiting.push('start');
  if (row.state === 'approved' && row.extension_state === 'pending') {
    awaiting.push('extension_review');
  }
  if (row.break_glass && row.break_glass_verdict === null) awaiting.push('break_glass_review');
  return {
    starts_at: row.starts_at === null ? null : iso(row.starts_at),
    awaiting,
    approvals_by: groups ? progressOf(groups, own) : null,
    decided_by_rule: row.decided_by_rule,
    extended: row.extended_ms > 0 ? formatDuration(row.extended_ms) : null,
    extension: extensionToWire(row, reviews),
    break_glass: breakGlassToWire(row),
  };
}

function extensionToWire(row: RequestRow, reviews: ReviewRow[]): Extension | null {
  if (row.extension_round === 0 || row.extension_state === null) return null;
  const mine = reviews.filter((r) => r.round === row.extension_round);
  const groups = readGroups(row.extension_approval_groups);
  return {
    round: row.extension_round,
    state: row.extension_state,
    duration: formatDuration(row.extension_ms ?? 0),
    reason: row.extension_reason,
    requested_at: iso(row.extension_requested_at ?? row.created_at),
    approvals_required: row.extension_approvals_required ?? 0,
    approvals_by: groups ? progressOf(groups, mine) : null,
    reviews: mine.map(reviewToWire),
    fingerprint: row.extension_fingerprint ?? '',
  };
}

function breakGlassToWire(row: RequestRow): BreakGlass | null {
  if (!row.break_glass) return null;
  return {
    review_by: iso(row.break_glass_review_by ?? row.created_at),
    overdue: row.break_glass_overdue_at !== null && row.break_glass_verdict === null,
    verdict: row.break_glass_verdict,
    reviewer: row.break_glass_reviewer ? (JSON.parse(row.break_glass_reviewer) as Identity) : null,
    comment: row.break_glass_comment,
    reviewed_at: row.break_glass_reviewed_at === null ? null : iso(row.break_glass_reviewed_at),
  };
}
