import type { AuditEventType, RequestState } from '../../../api/schemas.js';

/**
 * The lifecycle of a request as one table: every state change the broker can make, from which
 * state, on which event, who may cause it and when, the state it leads to and the audit events it
 * writes, in order. The rules (the other files here) build a change only by naming rows of this
 * table (change.ts), so this table is what the broker does; the state diagrams in
 * docs/architecture.md are printed from it (`npx tsx scripts/lifecycle-diagram.ts`), and a test
 * fails when the two differ.
 *
 * A request lives in three machines at once: the request itself (its window), the extension
 * asked for on a live grant, and the review after the fact of a break-glass grant. One event can
 * move two of them in one transaction (revoking a grant lapses its pending extension; filing a
 * break-glass request approves it and opens its review): the change then holds one step per
 * machine, each a row of this table with its own audit events.
 */

export type LifecycleEvent =
  | 'file'
  | 'review'
  | 'cancel'
  | 'revoke'
  | 'expire'
  | 'activate'
  | 'mint'
  | 'extend'
  | 'acknowledge';

export type Machine = 'request' | 'extension' | 'break-glass';

/** The states of each machine; `new` is before the request exists. */
export type ExtensionMachineState = 'idle' | 'extension_pending';
export type BreakGlassMachineState = 'none' | 'awaiting_review' | 'acknowledged' | 'flagged';
export type MachineState = RequestState | 'new' | ExtensionMachineState | BreakGlassMachineState;

export interface TransitionSpec {
  readonly machine: Machine;
  readonly from: MachineState;
  readonly event: LifecycleEvent;
  readonly to: MachineState;
  /** Who may cause it. */
  readonly who: string;
  /** The condition (policy, time) under which this row, rather than another, applies. */
  readonly when: string;
  /** Audit events written with it, in this order, in the transaction that makes the change. */
  readonly audit: readonly AuditEventType[];
}

const REQUESTER = 'a requester of the role';
const APPROVER = 'an approver of the role, never the requester';
const BROKER = 'the broker (whoever touches it, or the sweep)';
const REVOKER = 'the requester, an approver of the role or an admin';

const request = (
  from: RequestState | 'new',
  event: LifecycleEvent,
  to: RequestState,
  who: string,
  when: string,
  audit: AuditEventType[],
): TransitionSpec => ({ machine: 'request', from, event, to, who, when, audit });

export const TRANSITIONS = {
  // ---- the request and its window ----
  file: request(
    'new',
    'file',
    'pending',
    REQUESTER,
    'the role needs approvals and no rule decides',
    ['request.created'],
  ),
  'file-approved': request(
    'new',
    'file',
    'approved',
    REQUESTER,
    '`approvals: 0` or an approval rule approves; the window opens now',
    ['request.created', 'request.approved'],
  ),
  'file-scheduled': request(
    'new',
    'file',
    'scheduled',
    REQUESTER,
    '`approvals: 0` or an approval rule approves; the window opens at `starts_at`',
    ['request.created', 'request.approved'],
  ),
  'file-denied': request('new', 'file', 'denied', REQUESTER, 'an approval rule denies', [
    'request.created',
    'request.denied',
  ]),
  'file-break-glass': request(
    'new',
    'file',
    'approved',
    REQUESTER,
    '`--break-glass` on a role with `break_glass`, with a reason, within `max_per_week`; no approver',
    ['request.created', 'request.approved'],
  ),
  review: request(
    'pending',
    'review',
    'pending',
    APPROVER,
    'approvals (per group, when multi-party) and denials stay below their thresholds',
    ['review.recorded'],
  ),
  approve: request(
    'pending',
    'review',
    'approved',
    APPROVER,
    'the approvals reach `approvals` and the start has come: the window opens now',
    ['review.recorded', 'request.approved'],
  ),
  'approve-scheduled': request(
    'pending',
    'review',
    'scheduled',
    APPROVER,
    'the approvals reach `approvals` before `starts_at`',
    ['review.recorded', 'request.approved'],
  ),
  deny: request('pending', 'review', 'denied', APPROVER, 'the denials reach `denials`', [
    'review.recorded',
    'request.denied',
  ]),
  cancel: request('pending', 'cancel', 'cancelled', 'the requester', 'before a decision', [
    'request.cancelled',
  ]),
  lapse: request('pending', 'expire', 'expired', BROKER, '`pending_ttl` has passed', [
    'request.expired',
  ]),
  activate: request(
    'scheduled',
    'activate',
    'approved',
    BROKER,
    '`starts_at` has come; each credential then checks the requester is still a requester',
    ['request.activated'],
  ),
  'cancel-scheduled': request(
    'scheduled',
    'cancel',
    'cancelled',
    'the requester',
    'before the start',
    ['request.cancelled'],
  ),
  'revoke-scheduled': request('scheduled', 'revoke', 'revoked', REVOKER, 'before the start', [
    'request.revoked',
  ]),
  'end-scheduled': request(
    'scheduled',
    'expire',
    'expired',
    BROKER,
    'the whole window passed before the broker saw it start',
    ['request.expired'],
  ),
  mint: request(
    'approved',
    'mint',
    'approved',
    'the requester (still a requester of the role, for a scheduled grant)',
    'inside the window; the credential expires at its end',
    ['credential.minted'],
  ),
  revoke: request('approved', 'revoke', 'revoked', REVOKER, 'before the window ends', [
    'request.revoked',
  ]),
  end: request('approved', 'expire', 'expired', BROKER, 'the window has ended', [
    'request.expired',
  ]),

  // ---- an extension of a live grant ----
  'extension-file': {
    machine: 'extension',
    from: 'idle',
    event: 'extend',
    to: 'extension_pending',
    who: 'the requester',
    when: 'the grant is approved, the role has `extend`, and all extensions stay within `max_total`',
    audit: ['extension.requested'],
  },
  'extension-file-approved': {
    machine: 'extension',
    from: 'idle',
    event: 'extend',
    to: 'idle',
    who: 'the requester',
    when: 'as above, with `extend.approvals: 0`: the grant’s end moves at once',
    audit: ['extension.requested', 'extension.approved'],
  },
  'extension-review': {
    machine: 'extension',
    from: 'extension_pending',
    event: 'review',
    to: 'extension_pending',
    who: APPROVER,
    when: 'approvals and denials stay below their thresholds',
    audit: ['review.recorded'],
  },
  'extension-approve': {
    machine: 'extension',
    from: 'extension_pending',
    event: 'review',
    to: 'idle',
    who: APPROVER,
    when: 'the approvals reach `extend.approvals`: the grant’s end moves, nothing else changes',
    audit: ['review.recorded', 'extension.approved'],
  },
  'extension-deny': {
    machine: 'extension',
    from: 'extension_pending',
    event: 'review',
    to: 'idle',
    who: APPROVER,
    when: 'the denials reach `denials`: the grant keeps its end',
    audit: ['review.recorded', 'extension.denied'],
  },
  'extension-cancel': {
    machine: 'extension',
    from: 'extension_pending',
    event: 'cancel',
    to: 'idle',
    who: 'the requester',
    when: 'before a decision',
    audit: ['extension.cancelled'],
  },
  'extension-lapse': {
    machine: 'extension',
    from: 'extension_pending',
    event: 'expire',
    to: 'idle',
    who: BROKER,
    when: 'the grant ends (its window, or a revocation) before a decision',
    audit: ['extension.expired'],
  },

  // ---- the review after the fact of a break-glass grant ----
  'break-glass-open': {
    machine: 'break-glass',
    from: 'none',
    event: 'file',
    to: 'awaiting_review',
    who: REQUESTER,
    when: 'with `file-break-glass`; a high-priority event',
    audit: ['break_glass.used'],
  },
  'break-glass-acknowledge': {
    machine: 'break-glass',
    from: 'awaiting_review',
    event: 'acknowledge',
    to: 'acknowledged',
    who: APPROVER,
    when: 'any time after use, overdue or not',
    audit: ['break_glass.acknowledged'],
  },
  'break-glass-flag': {
    machine: 'break-glass',
    from: 'awaiting_review',
    event: 'acknowledge',
    to: 'flagged',
    who: APPROVER,
    when: 'with a comment; a high-priority event (the grant is not ended: revoke it for that)',
    audit: ['break_glass.flagged'],
  },
  'break-glass-overdue': {
    machine: 'break-glass',
    from: 'awaiting_review',
    event: 'expire',
    to: 'awaiting_review',
    who: BROKER,
    when: '`review_within` has passed without a review (once); a high-priority event',
    audit: ['break_glass.overdue'],
  },
} as const satisfies Record<string, TransitionSpec>;

export type TransitionId = keyof typeof TRANSITIONS;

export interface Transition extends TransitionSpec {
  readonly id: TransitionId;
}

export function transition(id: TransitionId): Transition {
  return { id, ...TRANSITIONS[id] };
}

export const ALL_TRANSITIONS: readonly Transition[] = (
  Object.keys(TRANSITIONS) as TransitionId[]
).map(transition);

export const MACHINES: readonly { machine: Machine; title: string }[] = [
  { machine: 'request', title: 'The request and its window' },
  { machine: 'extension', title: 'An extension of a live grant' },
  { machine: 'break-glass', title: 'The review of a break-glass grant' },
];

/** States no event leaves: the request is over. */
export const FINAL_STATES: readonly RequestState[] = ['denied', 'cancelled', 'expired', 'revoked'];

/** States whose window is open: a credential may be minted. */
export const ACTIVE_STATES: readonly RequestState[] = ['approved'];
