import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type { CreateRequestBody } from '../../../api/schemas.js';
import { durationOf, forbidden, HttpError } from '../../errors.js';
import { canRequest, formatPrincipal } from '../../policy/principal.js';
import type { Caller, RolePolicy } from '../../policy/types.js';
import type { RequestRow } from '../../store/schema.js';
import { fingerprintOf, iso } from '../wire.js';
import { type Change, changeOf } from './change.js';
import { identityOf } from './who.js';

/** Filing a request: who may, for how long, and the new request with its first events. */

export interface Filing {
  durationMs: number;
  reason: string | null;
}

/**
 * Whether `caller` may file `body` for `role`, cheapest checks first (the service asks for a
 * step-up sign-in only after these pass). `requestable`: the roles the caller may request, named
 * when the role does not exist.
 */
export function checkFiling(
  role: RolePolicy | undefined,
  name: string,
  caller: Caller,
  body: CreateRequestBody,
  requestable: () => string[],
): Filing {
  if (!role) {
    const mine = requestable();
    throw new HttpError(
      400,
      ErrorCode.UnknownRole,
      `there is no role ${JSON.stringify(name)}`,
      mine.length > 0
        ? `roles you may request: ${mine.join(', ')}`
        : 'you may not request any role; ask an administrator to add you to a requester group',
    );
  }
  if (!canRequest(role, caller)) {
    throw forbidden(
      `you may not request role ${role.name}`,
      `its requesters are ${role.requesters.map(formatPrincipal).join(', ')}`,
    );
  }
  const durationMs =
    body.duration === undefined
      ? role.defaultDurationMs
      : durationOf('duration', body.duration, 'durations look like 15m, 1h30m, 90s or 2d');
  if (durationMs > role.maxDurationMs) {
    throw new HttpError(
      400,
      ErrorCode.DurationTooLong,
      `\`duration\` ${formatDuration(durationMs)} is longer than the maximum of ${formatDuration(role.maxDurationMs)} for role ${role.name}`,
      `ask for ${formatDuration(role.maxDurationMs)} or less`,
    );
  }
  const reason = body.reason ?? null;
  if (role.requireReason && (reason === null || reason.trim() === '')) {
    throw new HttpError(
      400,
      ErrorCode.ReasonRequired,
      `role ${role.name} requires a reason`,
      'say why you need it, e.g. --reason "hotfix INC-4211"',
    );
  }
  return { durationMs, reason };
}

/** The new request's row (without `seq`) and its creation, approved at once for `approvals: 0`. */
export function onFile(
  input: {
    id: string;
    role: RolePolicy;
    caller: Caller;
    filing: Filing;
    ticket: string | null;
    idempotency: { key: string; hash: string } | null;
  },
  now: number,
): { row: Omit<RequestRow, 'seq'>; change: Change } {
  const { id, role, caller, filing } = input;
  const base = {
    id,
    role: role.name,
    requester_iss: caller.iss,
    requester_sub: caller.sub,
    duration_ms: filing.durationMs,
    reason: filing.reason,
    ticket: input.ticket,
    created_at: now,
  };
  const auto = role.approvals === 0;
  const row: Omit<RequestRow, 'seq'> = {
    ...base,
    state: auto ? 'approved' : 'pending',
    requester_name: caller.name,
    expires_at: auto ? now + filing.durationMs : now + role.pendingTtlMs,
    approved_at: auto ? now : null,
    ended_at: null,
    approvals_required: role.approvals,
    denials_required: role.denials,
    approvers: JSON.stringify(role.approvers.map(formatPrincipal)),
    fingerprint: fingerprintOf(base),
    review_count: 0,
    idempotency_key: input.idempotency?.key ?? null,
    idempotency_hash: input.idempotency?.hash ?? null,
  };
  const created = {
    actor: identityOf(caller),
    data: {
      role: role.name,
      duration: formatDuration(filing.durationMs),
      reason: filing.reason,
      ticket: row.ticket,
      approvals_required: role.approvals,
      denials_required: role.denials,
      expires_at: iso(row.expires_at),
      fingerprint: row.fingerprint,
    },
  };
  const change = auto
    ? changeOf('file-approved', null, row, {
        'request.created': created,
        'request.approved': {
          actor: null,
          data: { auto: true, approvals: 0, expires_at: iso(row.expires_at) },
        },
      })
    : changeOf('file', null, row, { 'request.created': created });
  return { row, change };
}
