import type { Kysely } from 'kysely';
import { DEFAULT_CREDENTIAL_TTL_MS } from '../policy/role-credential.js';
import { DEFAULT_USE } from '../policy/role-use.js';
import type { RolePolicy, UsePolicy } from '../policy/types.js';
import { type AllColumns, reusableInsert } from '../store/compiled.js';
import type { CredentialRow, Database } from '../store/schema.js';

/**
 * Credentials as a grant's parts: how long one lasts (the role's `credential.ttl`, never past the
 * grant's window) and the record of each one minted, so that a revocation can say which `jti`s it
 * stops. Relying parties that only check signatures stop accepting a revoked grant within one
 * lifetime, because nothing fresh is minted for it.
 */

type Q = Kysely<Database>;

/** A role's credential lifetime. */
export function credentialTtlMs(role: RolePolicy): number {
  return role.credential.ttlMs ?? DEFAULT_CREDENTIAL_TTL_MS;
}

export function usePolicyOf(role: RolePolicy | undefined): UsePolicy {
  return role?.use ?? DEFAULT_USE;
}

/**
 * The `exp` (whole seconds) of a credential minted at `issuedAt` (seconds) for a grant ending at
 * `windowEndMs`: one lifetime later, or the window's end if that comes first (rounded down, so a
 * credential never outlives its grant).
 */
export function credentialExpiry(issuedAt: number, windowEndMs: number, ttlMs: number): number {
  return Math.min(Math.floor(windowEndMs / 1000), issuedAt + Math.floor(ttlMs / 1000));
}

const CREDENTIAL_COLUMNS = [
  'jti',
  'request_id',
  'role',
  'kid',
  'audience',
  'issued_at',
  'expires_at',
] as const satisfies readonly (keyof CredentialRow)[];
true satisfies AllColumns<CredentialRow, typeof CREDENTIAL_COLUMNS>;
// Once per mint: compiled once (store/compiled.ts).
const insertCredential = reusableInsert<CredentialRow>('credentials', CREDENTIAL_COLUMNS);

/** Inside the mint's transaction: the credential is recorded with its audit event or not at all. */
export async function recordCredential(tx: Q, row: CredentialRow): Promise<void> {
  await insertCredential(tx, [row]);
}

/**
 * The credentials of a request still valid at `at` (ms), oldest first, at most `limit`: what a
 * revocation stops. Older ones have expired on their own.
 */
export async function liveCredentials(
  q: Q,
  requestId: string,
  at: number,
  limit = 1000,
): Promise<CredentialRow[]> {
  return q
    .selectFrom('credentials')
    .selectAll()
    .where('request_id', '=', requestId)
    .where('expires_at', '>', at)
    .orderBy('expires_at', 'asc')
    .limit(limit)
    .execute();
}

/** The credentials of many requests still valid at `at`, grouped by request. */
export async function liveCredentialsOf(
  q: Q,
  requestIds: string[],
  at: Map<string, number>,
): Promise<Map<string, CredentialRow[]>> {
  const out = new Map<string, CredentialRow[]>();
  if (requestIds.length === 0) return out;
  const rows = await q
    .selectFrom('credentials')
    .selectAll()
    .where('request_id', 'in', requestIds)
    .orderBy('expires_at', 'asc')
    .execute();
  for (const r of rows) {
    if (r.expires_at <= (at.get(r.request_id) ?? 0)) continue;
    const list = out.get(r.request_id);
    if (list) list.push(r);
    else out.set(r.request_id, [r]);
  }
  return out;
}
