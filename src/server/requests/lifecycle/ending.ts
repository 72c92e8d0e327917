import { forbidden, invalidState } from '../../errors.js';
import type { RequestRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf } from './change.js';
import type { Who } from './who.js';

/** Ending a request early: the requester cancels a pending one, a revoker ends a window. */

/** Cancelling is the requester's; `unchanged` when it is already cancelled (a repeat). */
export function checkCanceller(who: Who): void {
  if (!who.requester) {
    throw forbidden('only the requester can cancel a request', 'reviewers deny it instead');
  }
}

export function onCancel(row: RequestRow, who: Who, now: number): Change | 'unchanged' {
  checkCanceller(who);
  if (row.state === 'cancelled') return 'unchanged';
  if (row.state !== 'pending') {
    throw invalidState(
      `request ${row.id} is ${row.state}; only pending requests can be cancelled`,
      row.state === 'approved' ? 'an approved request is ended with `jitctl revoke`' : undefined,
    );
  }
  return changeOf(
    'cancel',
    row,
    { ended_at: now },
    { 'request.cancelled': { actor: who.identity, data: { role: row.role } } },
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
  if (row.state !== 'approved') {
    throw invalidState(
      `request ${row.id} is ${row.state}; only approved requests can be revoked`,
      row.state === 'pending' ? 'a pending request is withdrawn with `jitctl cancel`' : undefined,
    );
  }
  return changeOf(
    'revoke',
    row,
    { ended_at: now },
    {
      'request.revoked': {
        actor: who.identity,
        data: {
          window_ends_at: iso(row.expires_at),
          ...(details.reason ? { reason: details.reason } : {}),
          ...(details.jtis ? { jtis: [...details.jtis] } : {}),
          ...(details.jtisTruncated ? { jtis_truncated: true } : {}),
        },
      },
    },
  );
}
