import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type { CreateRequestBody } from '../../../api/schemas.js';
import { badRequest, durationOf, forbidden, HttpError } from '../../errors.js';
import { canRequest, formatPrincipal } from '../../policy/principal.js';
import type { AutoRule, Caller, RolePolicy } from '../../policy/types.js';
import type { RequestRow } from '../../store/schema.js';
import { fingerprintOf, iso } from '../wire.js';
import { storeGroups } from './approvals.js';
import { type AuditContent, type Change, changeOf, withStep } from './change.js';
import { identityOf } from './who.js';

/**
 * Filing a request: who may, for how long, when it starts, whether it is break-glass, and the new
 * request with its first events: pending, or decided at once (no approvals needed, an approval
 * rule, break-glass).
 */

/** A scheduled start is at most this far ahead: further plans are better filed nearer the time. */
export const MAX_START_AHEAD_MS = 7 * 24 * 3_600_000;
/** A start this little in the past (clock skew, a slow terminal) means "now". */
export const START_SKEW_MS = 60_000;
const WEEK_MS = 7 * 24 * 3_600_000;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$/;

export interface Filing {
  durationMs: number;
  reason: string | null;
  /** The scheduled start (ms), or null to start at approval. */
  startsAt: number | null;
  breakGlass: boolean;
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
  now: number,
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
  const breakGlass = body.break_glass === true;
  if (breakGlass) {
    if (!role.breakGlass) {
      throw forbidden(
        `role ${role.name} has no break-glass access`,
        'file a normal request; its approvers are ' +
          role.approvers.map(formatPrincipal).join(', '),
      );
    }
    if (reason === null || reason.trim() === '') {
      throw new HttpError(
        400,
        ErrorCode.ReasonRequired,
        'break-glass access requires a reason',
        'say what is on fire, e.g. --reason "INC-4211: checkout down"',
      );
    }
    if (body.starts_at !== undefined) {
      throw badRequest('break-glass access starts now; it cannot be scheduled', 'drop --at/--in');
    }
  }
  if (role.requireReason && (reason === null || reason.trim() === '')) {
    throw new HttpError(
      400,
      ErrorCode.ReasonRequired,
      `role ${role.name} requires a reason`,
      'say why you need it, e.g. --reason "hotfix INC-4211"',
    );
  }
  const startsAt = body.starts_at === undefined ? null : startOf(body.starts_at, now);
  return { durationMs, reason, startsAt, breakGlass };
}

/** `starts_at` as ms; null when it is (about) now. Past, unparsable or too far: 400. */
export function startOf(text: string, now: number): number | null {
  const at = RFC3339.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) {
    throw new HttpError(
      400,
      ErrorCode.InvalidStart,
      `\`starts_at\` ${JSON.stringify(text.slice(0, 64))} is not an RFC 3339 time`,
      'write e.g. 2025-01-01T14:00:00Z or 2025-01-01T15:00:00+01:00',
    );
  }
  if (at < now - START_SKEW_MS) {
    throw new HttpError(
      400,
      ErrorCode.InvalidStart,
      `\`starts_at\` ${iso(at)} is in the past (it is ${iso(now)} now)`,
      'leave the start out to start at approval, or give a time ahead',
    );
  }
  if (at > now + MAX_START_AHEAD_MS) {
    throw new HttpError(
      400,
      ErrorCode.InvalidStart,
      `\`starts_at\` ${iso(at)} is more than ${formatDuration(MAX_START_AHEAD_MS)} ahead`,
      `file it nearer the time: starts can be at most ${formatDuration(MAX_START_AHEAD_MS)} ahead`,
    );
  }
  return at <= now ? null : at;
}

/** What the database knows that limits a filing, counted in the filing's transaction. */
export interface FilingCounts {
  /** The requester's pending requests of this role, and when the oldest one lapses. */
  pending: number;
  oldestPendingDeadline: number | null;
  /** The requester's break-glass requests of this role in the last 7 days, and the oldest one's time. */
  breakGlassThisWeek: number;
  oldestBreakGlass: number | null;
}

/** The per-person limits: `max_pending` and `break_glass.max_per_week` (429 with Retry-After). */
export function checkLimits(
  role: RolePolicy,
  filing: Filing,
  counts: FilingCounts,
  now: number,
): void {
  const retryAfter = (at: number | null) => ({
    'retry-after': String(Math.max(1, Math.ceil(((at ?? now + 60_000) - now) / 1000))),
  });
  if (filing.breakGlass) {
    const max = role.breakGlass!.maxPerWeek;
    if (counts.breakGlassThisWeek >= max) {
      const next = counts.oldestBreakGlass === null ? null : counts.oldestBreakGlass + WEEK_MS;
      throw new HttpError(
        429,
        ErrorCode.RateLimited,
        `you have used break-glass for ${role.name} ${counts.breakGlassThisWeek} times in the last 7 days; the limit is ${max}`,
        `file a normal request${next === null ? '' : `; break-glass is possible again at ${iso(next)}`}`,
        retryAfter(next),
      );
    }
    return;
  }
  if (counts.pending >= role.maxPending) {
    throw new HttpError(
      429,
      ErrorCode.RateLimited,
      `you have ${counts.pending} pending requests for ${role.name}; at most ${role.maxPending} may wait at once`,
      'cancel one (`jitctl list --mine --state pending`, then `jitctl cancel <id>`) or wait for a decision',
      retryAfter(counts.oldestPendingDeadline),
    );
  }
}

export interface FileInput {
  id: string;
  role: RolePolicy;
  caller: Caller;
  filing: Filing;
  ticket: string | null;
  idempotency: { key: string; hash: string } | null;
  /** The approval rule that decides (judgeRules), if any; never for break-glass. */
  rule: AutoRule | null;
}

/** The new request's row (without `seq`) and its creation, decided at once when it is. */
export function onFile(
  input: FileInput,
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
  const rule = filing.breakGlass ? null : input.rule;
  const decision = filing.breakGlass
    ? 'approve'
    : rule
      ? rule.decision
      : role.approvals === 0
        ? 'approve'
        : 'pending';
  const start = filing.startsAt ?? now;
  const pendingTtlFrom = filing.startsAt ?? now;
  const row: Omit<RequestRow, 'seq'> = {
    ...base,
    state: 'pending',
    requester_name: caller.name,
    expires_at:
      decision === 'approve' ? start + filing.durationMs : pendingTtlFrom + role.pendingTtlMs,
    approved_at: decision === 'approve' ? now : null,
    ended_at: decision === 'deny' ? now : null,
    approvals_required: role.approvals,
    denials_required: role.denials,
    approvers: JSON.stringify(role.approvers.map(formatPrincipal)),
    fingerprint: fingerprintOf({
      ...base,
      starts_at: filing.startsAt,
      break_glass: filing.breakGlass,
    }),
    review_count: 0,
    idempotency_key: input.idempotency?.key ?? null,
    idempotency_hash: input.idempotency?.hash ?? null,
    starts_at: filing.startsAt,
    revision: 0,
    decided_by_rule: rule?.name ?? null,
    approval_groups: storeGroups(role.approvalGroups),
    extended_ms: 0,
    extension_round: 0,
    extension_state: null,
    extension_ms: null,
    extension_reason: null,
    extension_requested_at: null,
    extension_approvals_required: null,
    extension_approval_groups: null,
    extension_fingerprint: null,
    break_glass: 0,
    break_glass_review_by: null,
    break_glass_verdict: null,
    break_glass_reviewer: null,
    break_glass_comment: null,
    break_glass_reviewed_at: null,
    break_glass_overdue_at: null,
  };
  const { state: _, ...fields } = row;
  const created: AuditContent = {
    'request.created': {
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
        ...(filing.startsAt !== null ? { starts_at: iso(filing.startsAt) } : {}),
        ...(filing.breakGlass ? { break_glass: true } : {}),
      },
    },
  };
  const approved = (data: Record<string, unknown>) => ({
    'request.approved': {
      actor: null,
      data: {
        auto: true,
        approvals: 0,
        expires_at: iso(row.expires_at),
        ...(filing.startsAt !== null ? { starts_at: iso(filing.startsAt) } : {}),
        ...data,
      },
    },
  });
  let change: Change;
  if (filing.breakGlass) {
    const reviewBy = now + role.breakGlass!.reviewWithinMs;
    change = changeOf('file-break-glass', null, fields, {
      ...created,
      ...approved({ break_glass: true }),
    });
    change = withStep(
      change,
      'break-glass-open',
      null,
      { break_glass: 1, break_glass_review_by: reviewBy },
      {
        'break_glass.used': {
          actor: identityOf(caller),
          data: {
            role: role.name,
            reason: filing.reason,
            review_by: iso(reviewBy),
            approvers: role.approvers.map(formatPrincipal),
            priority: 'high',
          },
        },
      },
    );
  } else if (decision === 'deny') {
    change = changeOf('file-denied', null, fields, {
      ...created,
      'request.denied': { actor: null, data: { rule: rule!.name, auto: true } },
    });
  } else if (decision === 'approve') {
    change = changeOf(filing.startsAt !== null ? 'file-scheduled' : 'file-approved', null, fields, {
      ...created,
      ...approved(rule ? { rule: rule.name } : {}),
    });
  } else {
    change = changeOf('file', null, fields, created);
  }
  return { row: { ...row, ...change.patch } as Omit<RequestRow, 'seq'>, change };
}
