import { type HttpError, invalidState } from '../../errors.js';
import type { RequestRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf } from './change.js';

/** What time alone does to a request: its deadline passes. */

/** Whether the request's own deadline (pending TTL or window end) has passed. */
export const isDue = (row: Pick<RequestRow, 'state' | 'expires_at'>, now: number) =>
  (row.state === 'pending' || row.state === 'approved') && row.expires_at <= now;

/**
 * The change time alone makes: a pending request past its TTL lapses, an approved one past its
 * window ends. Applied before any event, so an event never acts on a request whose time is up.
 */
export function settle(row: RequestRow, now: number): Change | undefined {
  if (!isDue(row, now)) return undefined;
  const expired = {
    actor: null,
    data: { from: row.state, deadline: iso(row.expires_at) },
  };
  return changeOf(
    row.state === 'pending' ? 'lapse' : 'end',
    row,
    { ended_at: now },
    { 'request.expired': expired },
  );
}

export function expiredError(row: Pick<RequestRow, 'id'>): HttpError {
  return invalidState(`request ${row.id} has expired`, 'file a new request');
}
