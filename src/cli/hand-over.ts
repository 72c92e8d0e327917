import type { GrantStatus } from '../api/grant.js';
import { checkGrant } from '../client/grant-check.js';
import type { CredentialSource } from '../credentials/active.js';
import {
  type CredentialRecord,
  credentialKey,
  decodeCredential,
  encodeCredential,
} from '../credentials/records.js';
import type { Context } from './context.js';
import { AuthError, DeniedError, JitError, UnreachableError } from './errors.js';
import { clockTime, relative, safe } from './output.js';

/**
 * Before `exec`, `shell` or `credential` hands a stored credential over: one question to the
 * broker (src/client/grant-check.ts, the credential as its own proof), so that a revoked grant is
 * refused here and now (exit 3, with who revoked it, when and why) rather than wherever the token
 * ends up. While the grant lasts, a credential near its own expiry (the role's `credential.ttl`)
 * is replaced by a freshly minted one, so a tool that asks each time (kubectl's exec plugin)
 * always gets a token with its full lifetime.
 *
 * The broker cannot be reached: the credential is handed over with a warning only if the broker
 * confirmed the grant within the last {@link OFFLINE_GRACE_MS} (and the token has not expired);
 * otherwise exit 69. Five minutes keeps a network blip or a broker restart from stopping every
 * kubectl command, while a revocation made meanwhile reaches this machine within those five
 * minutes of its last confirmation; relying parties are not affected by it at all.
 */

/**
 * The long poll's ETag of the grant as handOver last saw it, by the record it returned: a running
 * command's follower starts waiting from there instead of asking once more.
 */
const etags = new WeakMap<CredentialRecord, string>();
export const grantEtagOf = (record: CredentialRecord): string | undefined => etags.get(record);

/** How long after the broker's last word a credential may be handed over without a new one. */
export const OFFLINE_GRACE_MS = 5 * 60_000;
/** The check of the grant, beyond which the broker counts as unreachable. */
export const CHECK_TIMEOUT_MS = 5_000;
/** A confirmation older than this is written back to the store (at most one write a minute). */
const CONFIRM_WRITE_MS = 60_000;
/** A tool gets a fresh credential when the stored one has less than this left. */
const TOOL_FRESHNESS_MS = 60_000;

/** The grant was revoked: exit 3, saying who revoked it, when and why. */
export class RevokedError extends DeniedError {
  override name = 'RevokedError';
  constructor(
    readonly role: string,
    readonly requestId: string,
    revoked: NonNullable<GrantStatus['revoked']>,
    now: number,
  ) {
    super(revokedLine(role, requestId, revoked, now), {
      hint: `request it again: jitctl request ${safe(role)} --reason "…"`,
    });
  }
}

/** "the grant for prod-deploy (req_…) was revoked by Lee Lead at 14:20 (3 minutes ago): why" */
export function revokedLine(
  role: string,
  requestId: string,
  revoked: NonNullable<GrantStatus['revoked']>,
  now: number,
): string {
  const at = Date.parse(revoked.at);
  const by = revoked.by ? ` by ${safe(revoked.by.name ?? revoked.by.sub)}` : '';
  const when = Number.isNaN(at) ? '' : ` at ${clockTime(at)} (${relative(at, now)})`;
  const why = revoked.reason ? `: ${safe(revoked.reason)}` : '';
  return `the grant for ${safe(role)} (${safe(requestId)}) was revoked${by}${when}${why}`;
}

export interface HandOverOptions {
  /**
   * `tool`: printed for another program (`credential`), which asks again when it expires; a
   * minute left is enough. `command`: put in a command's environment (`exec`, `shell`), where it
   * cannot be renewed; it gets a fresh one once half its lifetime is gone.
   */
  purpose: 'tool' | 'command';
}

/** The record to hand over: confirmed by the broker, and fresh enough for `purpose`. */
export async function handOver(
  ctx: Context,
  source: CredentialSource,
  record: CredentialRecord,
  opts: HandOverOptions,
): Promise<CredentialRecord> {
  const now = ctx.clock.now();
  const tokenEnd = Date.parse(record.expiresAt);
  const answer = await checkGrant({
    server: source.server,
    token: record.token.reveal(),
    timeoutMs: CHECK_TIMEOUT_MS,
  });
  if (answer.kind === 'unavailable') return offline(ctx, source, record, answer.reason, now);
  if (answer.kind === 'refused') {
    await forget(source, record);
    throw new DeniedError(
      `the broker no longer accepts the stored credential for ${safe(record.role)}: ${safe(answer.message)}`,
      { hint: `request it again: jitctl request ${safe(record.role)} --reason "…"` },
    );
  }
  const grant = answer.status;
  if (grant.request_id !== record.requestId)
    throw new JitError(`the broker answered about another request than ${safe(record.requestId)}`);
  if (grant.state === 'revoked' && grant.revoked) {
    await forget(source, record);
    throw new RevokedError(record.role, record.requestId, grant.revoked, now);
  }
  if (!grant.active) {
    const end = Date.parse(grant.expires_at);
    throw new DeniedError(
      grant.state === 'expired' || end <= now
        ? `the grant for ${safe(record.role)} ended at ${clockTime(end)} (${relative(end, now)})`
        : `the grant for ${safe(record.role)} is ${safe(grant.state)}, not active`,
      { hint: `request it again: jitctl request ${safe(record.role)} --reason "…"` },
    );
  }
  const confirmed: CredentialRecord = {
    ...record,
    grantExpiresAt: grant.expires_at,
    use: grant.use,
    confirmedAt: now,
  };
  const grantEnd = Date.parse(grant.expires_at);
  const lifetime = tokenEnd - (record.mintedAt ?? tokenEnd - 15 * 60_000);
  const wanted =
    opts.purpose === 'tool' ? TOOL_FRESHNESS_MS : Math.max(TOOL_FRESHNESS_MS, lifetime / 2);
  // A fresh credential would last longer than this one, and this one is running out.
  if (tokenEnd < grantEnd - 1000 && tokenEnd - now < wanted) {
    return remint(ctx, source, confirmed, tokenEnd - now);
  }
  const changed =
    record.grantExpiresAt !== grant.expires_at ||
    JSON.stringify(record.use) !== JSON.stringify(grant.use) ||
    now - (record.confirmedAt ?? 0) >= CONFIRM_WRITE_MS;
  if (changed) await keep(source, confirmed);
  if (answer.etag) etags.set(confirmed, answer.etag);
  return confirmed;
}

/** The broker cannot be reached: the grace, or exit 69. */
function offline(
  ctx: Context,
  source: CredentialSource,
  record: CredentialRecord,
  reason: string,
  now: number,
): CredentialRecord {
  const last = record.confirmedAt ?? record.mintedAt;
  const tokenEnd = Date.parse(record.expiresAt);
  if (last !== undefined && now - last < OFFLINE_GRACE_MS && tokenEnd > now) {
    ctx.io.err(
      `warning: cannot reach the broker at ${safe(source.server)} (${safe(reason)}) to confirm the ` +
        `grant for ${safe(record.role)}; using the credential it confirmed ${relative(last, now)} ` +
        `(jitctl waits at most ${OFFLINE_GRACE_MS / 60_000} minutes for a confirmation)\n`,
    );
    return record;
  }
  throw new UnreachableError(
    `cannot reach the broker at ${safe(source.server)} (${safe(reason)}) to confirm that the grant for ${safe(record.role)} is still active`,
    {
      hint:
        last === undefined
          ? 'jitctl hands over no credential the broker has not confirmed; try again when it is reachable'
          : `the broker last confirmed it ${relative(last, now)}; jitctl hands a credential over without a confirmation for ${OFFLINE_GRACE_MS / 60_000} minutes at most`,
    },
  );
}

/** Mints a fresh credential of the same grant (the session signs it), kept as the old one was. */
async function remint(
  ctx: Context,
  source: CredentialSource,
  record: CredentialRecord,
  leftMs: number,
): Promise<CredentialRecord> {
  const [{ connectOver }, { fetchCredential }] = await Promise.all([
    import('./connect.js'),
    import('./request-flow.js'),
  ]);
  try {
    const conn = await connectOver(ctx, source.server, source.store);
    let fresh: CredentialRecord;
    try {
      fresh = await fetchCredential(conn, { id: record.requestId, role: record.role });
    } finally {
      await conn.client.close();
    }
    await keep(source, fresh);
    return fresh;
  } catch (err) {
    // Without a session a fresh one cannot be minted; the one held still works for a while.
    if (err instanceof AuthError && leftMs > 5_000) {
      ctx.io.err(
        `warning: cannot mint a fresh credential for ${safe(record.role)} (${err.message}); ` +
          `the one held expires ${relative(Date.parse(record.expiresAt), ctx.clock.now())}\n`,
      );
      await keep(source, record);
      return record;
    }
    throw err;
  }
}

/**
 * Writes the record back where it came from, if that entry still holds the same request (a
 * `jitctl revoke` or a newer request meanwhile wins).
 */
async function keep(source: CredentialSource, record: CredentialRecord): Promise<void> {
  const key = credentialKey(source.server, record.role);
  const stored = decodeCredential(await source.store.get(key));
  if (stored?.requestId !== record.requestId) return;
  await source.store.set(key, encodeCredential(record));
}

/** Deletes the stored credential of this request (not a newer one for the same role). */
async function forget(source: CredentialSource, record: CredentialRecord): Promise<void> {
  const key = credentialKey(source.server, record.role);
  const stored = decodeCredential(await source.store.get(key));
  if (stored?.requestId === record.requestId) await source.store.delete(key);
}
