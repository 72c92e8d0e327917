import type { Identity } from '../../../api/schemas.js';
import { invalidState } from '../../errors.js';
import { canReview } from '../../policy/principal.js';
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
  };
}

export const approvalsOf = (reviews: readonly ReviewRow[]) =>
  reviews.filter((r) => r.decision === 'approve').length;
export const denialsOf = (reviews: readonly ReviewRow[]) =>
  reviews.filter((r) => r.decision === 'deny').length;

export function roleOf(row: RequestRow, role: RolePolicy | undefined, what: string): RolePolicy {
  if (!role) {
    throw invalidState(
      `role ${row.role} is no longer in the policy, so request ${row.id} cannot be ${what}`,
    );
  }
  return role;
}
