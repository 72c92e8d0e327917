import type { Identity } from '../../../api/schemas.js';
import { invalidState } from '../../errors.js';
import { canRequest, canReview } from '../../policy/principal.js';
import type { Caller, RolePolicy } from '../../policy/types.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';

/** The caller as the rules see them, and the role a request names. */

/** The caller as the rules see them, relative to one request. */
export interface Who {
  identity: Identity;
  /** Filed this request (same issuer and subject). */
  requester: boolean;
  /** An approver of the request's role (false when the role left the policy). */
  approver: boolean;
  /** In one of the broker's `admins` groups. */
  admin: boolean;
  /** A requester of the role now (by this sign-in's groups and identity). */
  eligible: boolean;
  /** The sign-in itself, for what depends on its groups (multi-party approvals). */
  caller: Caller;
}

export const identityOf = (c: Caller): Identity => ({ iss: c.iss, sub: c.sub, name: c.name });

export const isRequester = (row: RequestRow, c: Pick<Caller, 'iss' | 'sub'>) =>
  row.requester_iss === c.iss && row.requester_sub === c.sub;

export function whoIs(
  row: RequestRow,
  caller: Caller,
  role: RolePolicy | undefined,
  admin: boolean,
): Who {
  return {
    identity: identityOf(caller),
    requester: isRequester(row, caller),
    approver: role !== undefined && canReview(role, caller),
    admin,
    eligible: role !== undefined && canRequest(role, caller),
    caller,
  };
}

export const approvalsOf = (reviews: readonly ReviewRow[]) =>
  reviews.filter((r) => r.decision === 'approve').length;
export const denialsOf = (reviews: readonly ReviewRow[]) =>
  reviews.filter((r) => r.decision === 'deny').length;

/** The reviews of one round: 0 for the request, n for its n-th extension. */
export const roundOf = (reviews: readonly ReviewRow[], round: number) =>
  reviews.filter((r) => (r.round ?? 0) === round);

/** The bumped revision (part of the ETag) for changes that keep state and review count. */
export const nextRevision = (row: Pick<RequestRow, 'revision'>) => ({
  revision: (row.revision ?? 0) + 1,
});

export function roleOf(row: RequestRow, role: RolePolicy | undefined, what: string): RolePolicy {
  if (!role) {
    throw invalidState(
      `role ${row.role} is no longer in the policy, so request ${row.id} cannot be ${what}`,
    );
  }
  return role;
}
