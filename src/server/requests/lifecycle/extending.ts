import { createHash } from 'node:crypto';
import { canonicalJson } from '../../../api/audit-chain.js';
import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type { ExtendBody } from '../../../api/schemas.js';
import { durationOf, forbidden, HttpError, invalidState } from '../../errors.js';
import type { RolePolicy } from '../../policy/types.js';
import type { RequestRow } from '../../store/schema.js';
import { iso } from '../wire.js';
import { storeGroups } from './approvals.js';
import { type Change, changeOf } from './change.js';
import { nextRevision, roleOf, type Who } from './who.js';

/**
 * Extending a live grant (`POST /v1/requests/:id/extend`): the requester asks for more time on an
 * approved grant of a role with `extend`; approvers review it like a request (its own round of
 * reviews); once approved only the end moves. The grant works until its current end meanwhile,
 * and a pending extension lapses with the grant.
 */

export interface ExtensionAsk {
  durationMs: number;
  reason: string | null;
}

/** The requester's own checks, before the grant's state matters (and before a step-up). */
export function checkExtender(
  row: RequestRow,
  role: RolePolicy | undefined,
  who: Who,
  body: ExtendBody,
): { role: RolePolicy; ask: ExtensionAsk } {
  if (!who.requester) {
    throw forbidden('only the requester can extend a grant', 'they ask; approvers review it');
  }
  const r = roleOf(row, role, 'extended');
  if (!who.eligible) {
    throw forbidden(
      `you are no longer a requester of role ${r.name}, so request ${row.id} cannot be extended`,
      'your sign-in no longer shows a requester group of the role',
    );
  }
  if (!r.extend) {
    throw forbidden(
      `role ${r.name} does not allow extensions`,
      'file a new request when this one ends (the policy key is `extend`)',
    );
  }
  const durationMs = durationOf('duration', body.duration, 'e.g. 30m or 1h');
  const reason = body.reason?.trim() ? body.reason : null;
  if (r.extend.requireReason && reason === null) {
    throw new HttpError(
      400,
      ErrorCode.ReasonRequired,
      `extensions of role ${r.name} require a reason`,
      'say why you need longer, e.g. --reason "migration still running"',
    );
  }
  return { role: r, ask: { durationMs, reason } };
}

/** The extension's fingerprint: what an approver of it decides on. */
export function extensionFingerprint(
  row: RequestRow,
  round: number,
  ask: ExtensionAsk,
  at: number,
) {
  const digest = createHash('sha256')
    .update(
      canonicalJson({
        id: row.id,
        round,
        duration_ms: ask.durationMs,
        reason: ask.reason,
        requested_at: at,
      }),
    )
    .digest('hex');
  return digest.slice(0, 16).replace(/(.{4})(?=.)/g, '$1-');
}

/** `unchanged` for a repeat of the extension already waiting (a retried call). */
export function onExtend(
  row: RequestRow,
  role: RolePolicy | undefined,
  who: Who,
  body: ExtendBody,
  now: number,
): Change | 'unchanged' {
  const { role: r, ask } = checkExtender(row, role, who, body);
  const extend = r.extend!;
  if (row.state !== 'approved') {
    throw invalidState(
      `request ${row.id} is ${row.state}; only approved grants can be extended`,
      row.state === 'pending' || row.state === 'scheduled'
        ? 'ask for the duration you need in the request itself'
        : 'file a new request',
    );
  }
  if (row.break_glass) {
    throw invalidState(
      `request ${row.id} is break-glass access, which cannot be extended`,
      'file a normal request (or, if it is still an emergency, another break-glass one)',
    );
  }
  if (row.extension_state === 'pending') {
    if (row.extension_ms === ask.durationMs && row.extension_reason === ask.reason)
      return 'unchanged';
    throw invalidState(
      `request ${row.id} already has an extension of ${formatDuration(row.extension_ms ?? 0)} waiting for review`,
      `withdraw it with \`jitctl cancel ${row.id}\` to ask for something else`,
    );
  }
  const total = row.extended_ms + ask.durationMs;
  if (total > extend.maxTotalMs) {
    const left = extend.maxTotalMs - row.extended_ms;
    throw new HttpError(
      400,
      ErrorCode.DurationTooLong,
      `extending by ${formatDuration(ask.durationMs)} would make ${formatDuration(total)} of extensions; role ${r.name} allows at most ${formatDuration(extend.maxTotalMs)} in all`,
      left > 0
        ? `ask for ${formatDuration(left)} or less`
        : 'file a new request when this one ends',
    );
  }
  const round = row.extension_round + 1;
  const fingerprint = extensionFingerprint(row, round, ask, now);
  const requested = {
    actor: who.identity,
    data: {
      round,
      duration: formatDuration(ask.durationMs),
      reason: ask.reason,
      expires_at: iso(row.expires_at),
      approvals_required: extend.approvals,
      fingerprint,
    },
  };
  const fields = {
    ...nextRevision(row),
    extension_round: round,
    extension_ms: ask.durationMs,
    extension_reason: ask.reason,
    extension_requested_at: now,
    extension_approvals_required: extend.approvals,
    extension_approval_groups: storeGroups(extend.approvalGroups),
    extension_fingerprint: fingerprint,
  };
  if (extend.approvals === 0) {
    const expiresAt = row.expires_at + ask.durationMs;
    return changeOf(
      'extension-file-approved',
      row,
      { ...fields, extension_state: 'approved', expires_at: expiresAt, extended_ms: total },
      {
        'extension.requested': requested,
        'extension.approved': {
          actor: null,
          data: {
            round,
            auto: true,
            duration: formatDuration(ask.durationMs),
            previous_expires_at: iso(row.expires_at),
            expires_at: iso(expiresAt),
          },
        },
      },
    );
  }
  return changeOf(
    'extension-file',
    row,
    { ...fields, extension_state: 'pending' },
    { 'extension.requested': requested },
  );
}
