import { forbidden, invalidState } from '../../errors.js';
import type { RequestRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf } from './change.js';
import { lapseExtension } from './time.js';
import { nextRevision, type Who } from './who.js';

/**
 * Ending early: the requester cancels a pending or scheduled request (or the extension waiting
 * on a grant), a revoker ends a grant, scheduled or open (and with it a pending extension).
 */

/** Cancelling is the requester's. */
export function checkCanceller(who: Who): void {
  if (!who.requester) {
    throw forbidden('only the requester can cancel a request', 'reviewers deny it instead');
  }
}

/** `unchanged` when it is already cancelled (a repeat). */
export function onCancel(row: RequestRow, who: Who, now: number): Change | 'unchanged' {
  checkCanceller(who);
  if (row.state === 'cancelled') return 'unchanged';
  const cancelled = { 'request.cancelled': { actor: who.identity, data: { role: row.role } } };
  if (row.state === 'pending') return changeOf('cancel', row, { ended_at: now }, cancelled);
  if (row.state === 'scheduled') {
    return changeOf('cancel-scheduled', row, { ended_at: now }, cancelled);
  }
  if (row.state === 'approved' && row.extension_state === 'pending') {
    return changeOf(
      'extension-cancel',
      row,
      { extension_state: 'cancelled', ...nextRevision(row) },
      {
        'extension.cancelled': {
          actor: who.identity,
          data: { round: row.extension_round },
        },
      },
    );
  }
  throw invalidState(
    `request ${row.id} is ${row.state}; only pending requests can be cancelled`,
    row.state === 'approved' ? 'an approved request is ended with `jitctl revoke`' : undefined,
  );
}

export function checkRevoker(who: Who): void {
  if (!(who.requester || who.approver || who.admin)) {
    throw forbidden(
      'only the requester, an approver of the role or an administrator can revoke a request',
    );
  }
}

/**
 * What a revocation records besides who and when: the revoker's reason, and the credentials of
 * the grant still valid (their `jti`s, read inside the revoking transaction), for relying parties.
 */
export interface RevokeDetails {
  reason?: string | null | undefined;
  jtis?: readonly string[] | undefined;
  /** More credentials were valid than `jtis` lists (GET /v1/revocations lists them all). */
  jtisTruncated?: boolean | undefined;
}

export function onRevoke(
  row: RequestRow,
  who: Who,
  now: number,
  details: RevokeDetails = {},
): Change | 'unchanged' {
  checkRevoker(who);
  if (row.state === 'revoked') return 'unchanged';
  const revoked = {
    'request.revoked': {
      actor: who.identity,
      data: {
        window_ends_at: iso(row.expires_at),
        ...(details.reason ? { reason: details.reason } : {}),
        ...(details.jtis ? { jtis: [...details.jtis] } : {}),
        ...(details.jtisTruncated ? { jtis_truncated: true } : {}),
      },
    },
  };
  if (row.state === 'scheduled') {
    return changeOf('revoke-scheduled', row, { ended_at: now }, revoked);
  }
  if (row.state !== 'approved') {
    throw invalidState(
      `request ${row.id} is ${row.state}; only approved requests can be revoked`,
      row.state === 'pending' ? 'a pending request is withdrawn with `jitctl cancel`' : undefined,
    );
  }
  const change = changeOf('revoke', row, { ended_at: now }, revoked);
  return row.extension_state === 'pending'
    ? lapseExtension(change, row, 'the grant was revoked')
    : change;
}
