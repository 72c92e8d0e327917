import { forbidden, invalidState } from '../../errors.js';
import type { RolePolicy } from '../../policy/types.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { type Change, changeOf } from './change.js';
import { approvalsOf, roleOf, roundOf, type Who } from './who.js';

/** A credential for the requester, inside the window only. */

export function checkMinter(row: RequestRow, role: RolePolicy | undefined, who: Who): RolePolicy {
  if (!who.requester) {
    throw forbidden('only the requester can get the credential of a request');
  }
  return roleOf(row, role, 'used');
}

/** The window a credential minted now may cover, or the refusal (a credential never outlives it). */
export function mintWindow(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  now: number,
): { notBefore: number; notAfter: number } {
  if (row.state === 'scheduled') {
    const start = row.starts_at ?? row.expires_at;
    throw invalidState(
      `request ${row.id} is approved and starts at ${iso(start)}; its credential is available from then`,
      `\`jitctl wait ${row.id}\` waits for the start and fetches it`,
    );
  }
  if (row.state !== 'approved') {
    throw invalidState(
      row.state === 'pending'
        ? `request ${row.id} is still pending (${approvalsOf(roundOf(reviews, 0))} of ${row.approvals_required} approvals)`
        : `request ${row.id} is ${row.state}; only approved requests get a credential`,
      row.state === 'pending' ? `wait for it: jitctl wait ${row.id}` : 'file a new request',
    );
  }
  // Whole seconds, rounded down: the credential never outlives the approved window.
  const notAfter = Math.floor(row.expires_at / 1000);
  if (notAfter <= Math.floor(now / 1000)) {
    throw invalidState(`request ${row.id}'s window ends this second; file a new request`);
  }
  return { notBefore: Math.floor(now / 1000), notAfter };
}

/**
 * A scheduled grant was approved for who the requester was then; it is used by who they are at
 * the start. The broker knows groups only from sign-ins, so each credential of a scheduled grant
 * is checked against the sign-in asking for it: someone removed from the requesters' group in the
 * meantime (as their identity provider now says) gets nothing.
 */
export function checkStillEligible(row: RequestRow, who: Who): void {
  if (row.starts_at === null || who.eligible) return;
  throw forbidden(
    `you are no longer a requester of role ${row.role}, so scheduled request ${row.id} gives you nothing`,
    'your sign-in no longer shows a requester group of the role; if that is wrong, sign in again (`jitctl login`) once your identity provider is fixed',
  );
}

/** What a minted credential is, for its audit event: never the token itself. */
export interface Minted {
  jti: string;
  audience: string;
  kid: string;
  issuedAt: number;
  expiresAt: number;
}

export function onMint(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  who: Who,
  minted: Minted,
  now: number,
): Change {
  if (!who.requester) throw forbidden('only the requester can get the credential of a request');
  const window = mintWindow(row, reviews, now);
  checkStillEligible(row, who);
  if (minted.expiresAt > window.notAfter || minted.issuedAt > Math.floor(now / 1000) + 1) {
    throw new Error(`credential for ${row.id} outside its window`);
  }
  return changeOf(
    'mint',
    row,
    {},
    {
      'credential.minted': {
        actor: who.identity,
        data: {
          jti: minted.jti,
          aud: minted.audience,
          kid: minted.kid,
          iat: iso(minted.issuedAt * 1000),
          exp: iso(minted.expiresAt * 1000),
        },
      },
    },
  );
}
