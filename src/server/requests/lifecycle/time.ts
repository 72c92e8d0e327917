import { type HttpError, invalidState } from '../../errors.js';
import type { RequestRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf, withStep } from './change.js';
import { FINAL_STATES } from './table.js';

/**
 * What time alone does to a request: a pending one lapses after `pending_ttl`, a scheduled one
 * opens at its start, an approved one ends with its window (and a pending extension with it), an
 * unreviewed break-glass grant becomes overdue once. {@link settle} is applied before any event,
 * so no event acts on a request whose time has moved on.
 */

export function settle(row: RequestRow, now: number): Change | undefined {
  let change: Change | undefined;
  const expired = (state: string) => ({
    'request.expired': {
      actor: null,
      data: { from: state, deadline: iso(row.expires_at) },
    },
  });
  if (row.state === 'pending' && row.expires_at <= now) {
    change = changeOf('lapse', row, { ended_at: now }, expired('pending'));
  } else if (row.state === 'scheduled' && row.expires_at <= now) {
    change = changeOf('end-scheduled', row, { ended_at: now }, expired('scheduled'));
  } else if (row.state === 'scheduled' && row.starts_at !== null && row.starts_at <= now) {
    change = changeOf(
      'activate',
      row,
      {},
      {
        'request.activated': {
          actor: null,
          data: { starts_at: iso(row.starts_at), expires_at: iso(row.expires_at) },
        },
      },
    );
  } else if (row.state === 'approved' && row.expires_at <= now) {
    change = changeOf('end', row, { ended_at: now }, expired('approved'));
  }
  if (change && row.extension_state === 'pending' && change.patch.ended_at !== undefined) {
    change = lapseExtension(change, row, 'the grant ended');
  }
  if (
    row.break_glass &&
    row.break_glass_verdict === null &&
    row.break_glass_overdue_at === null &&
    row.break_glass_review_by !== null &&
    row.break_glass_review_by <= now
  ) {
    const overdue = {
      'break_glass.overdue': {
        actor: null,
        data: { review_by: iso(row.break_glass_review_by), priority: 'high' },
      },
    };
    const patch = { break_glass_overdue_at: now, revision: (row.revision ?? 0) + 1 };
    change = change
      ? withStep(change, 'break-glass-overdue', row, patch, overdue)
      : changeOf('break-glass-overdue', row, patch, overdue);
  }
  return change;
}

/** `change` (which ends the grant) with the pending extension lapsing in the same transaction. */
export function lapseExtension(change: Change, row: RequestRow, why: string): Change {
  return withStep(
    change,
    'extension-lapse',
    row,
    { extension_state: 'expired' },
    {
      'extension.expired': {
        actor: null,
        data: { round: row.extension_round, why },
      },
    },
  );
}

/** The next time time alone will change the request (a long poll wakes then), or null. */
export function nextDeadline(row: RequestRow): number | null {
  const times: number[] = [];
  if (row.state === 'pending' || row.state === 'approved') times.push(row.expires_at);
  if (row.state === 'scheduled')
    times.push(Math.min(row.starts_at ?? row.expires_at, row.expires_at));
  if (row.break_glass && row.break_glass_verdict === null && row.break_glass_overdue_at === null) {
    times.push(row.break_glass_review_by ?? row.expires_at);
  }
  return times.length === 0 ? null : Math.min(...times);
}

/** Whether time has changed anything about the request (read paths settle only then). */
export const isDue = (row: RequestRow, now: number) => settle(row, now) !== undefined;

/** Whether `change` ended the request (its request step entered a final state). */
export const endsRequest = (change: Change, after: Pick<RequestRow, 'state'>) =>
  change.steps.some((s) => s.transition.machine === 'request') && isFinal(after);

/** Whether the request is over (a final state). */
export const isFinal = (row: Pick<RequestRow, 'state'>) => FINAL_STATES.includes(row.state);

export function expiredError(row: Pick<RequestRow, 'id'>): HttpError {
  return invalidState(`request ${row.id} has expired`, 'file a new request');
}
