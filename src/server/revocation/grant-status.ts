import type { GrantStatus } from '../../api/grant.js';
import { useSettings } from '../policy/role-use.js';
import type { RolePolicy } from '../policy/types.js';
import type { Db } from '../store/database.js';
import type { RequestRow } from '../store/schema.js';
import { usePolicyOf } from './credentials.js';
import { revocationOf } from './revocations.js';

/**
 * A grant as the holder of one of its credentials may know it (`POST /v1/credential/status`):
 * whether it is still active, until when, and if it was revoked, by whom, when and why, which
 * `jitctl` shows before it refuses to hand the credential over or ends a running command.
 */

/** Changes when the grant ends, is revoked, starts or is extended: the status long poll's ETag. */
export function grantEtag(row: Pick<RequestRow, 'state' | 'expires_at'>): string {
  return `"${row.state}.${row.expires_at}"`;
}

export async function grantStatus(
  db: Db,
  row: RequestRow,
  role: RolePolicy | undefined,
  now: number,
): Promise<GrantStatus> {
  const revoked = row.state === 'revoked' ? await revocationOf(db.kysely, row.id) : undefined;
  return {
    active: row.state === 'approved' && row.expires_at > now,
    request_id: row.id,
    role: row.role,
    state: row.state,
    expires_at: new Date(row.expires_at).toISOString(),
    revoked:
      row.state === 'revoked'
        ? {
            at: revoked?.at ?? new Date(row.ended_at ?? now).toISOString(),
            by: revoked?.by ?? null,
            reason: revoked?.reason ?? null,
          }
        : null,
    use: useSettings(usePolicyOf(role)),
  };
}
