import type { AuditEventType, RequestState } from '../../../api/schemas.js';

/**
 * The lifecycle of a request as one table: every state change the broker can make, from which
 * state, on which event, who may cause it and when, the state it leads to and the audit events it
 * writes, in order. The rules in rules.ts pick a row of this table for each event (they cannot
 * build a change without naming one), so this table is what the broker does; the state diagram
 * in docs/architecture.md is printed from it (`npx tsx scripts/lifecycle-diagram.ts`), and a
 * test fails when the two differ.
 */

export type LifecycleEvent = 'file' | 'review' | 'cancel' | 'revoke' | 'expire' | 'mint';

/** `new` is the request before it exists: the source of the `file` transitions. */
export type FromState = RequestState | 'new';

export interface TransitionSpec {
  readonly from: FromState;
  readonly event: LifecycleEvent;
  readonly to: RequestState;
  /** Who may cause it. */
  readonly who: string;
  /** The condition (policy, time) under which this row, rather than another, applies. */
  readonly when: string;
  /** Audit events written with it, in this order, in the transaction that makes the change. */
  readonly audit: readonly AuditEventType[];
}

const REQUESTER = 'a requester of the role';
const APPROVER = 'an approver of the role, never the requester';

export const TRANSITIONS = {
  file: {
    from: 'new',
    event: 'file',
    to: 'pending',
    who: REQUESTER,
    when: 'the role needs approvals',
    audit: ['request.created'],
  },
  'file-approved': {
    from: 'new',
    event: 'file',
    to: 'approved',
    who: REQUESTER,
    when: '`approvals: 0`: the window starts at once',
    audit: ['request.created', 'request.approved'],
  },
  review: {
    from: 'pending',
    event: 'review',
    to: 'pending',
    who: APPROVER,
    when: 'approvals and denials both stay below their thresholds',
    audit: ['review.recorded'],
  },
  approve: {
    from: 'pending',
    event: 'review',
    to: 'approved',
    who: APPROVER,
    when: 'the approvals reach `approvals`: the window starts now',
    audit: ['review.recorded', 'request.approved'],
  },
  deny: {
    from: 'pending',
    event: 'review',
    to: 'denied',
    who: APPROVER,
    when: 'the denials reach `denials`',
    audit: ['review.recorded', 'request.denied'],
  },
  cancel: {
    from: 'pending',
    event: 'cancel',
    to: 'cancelled',
    who: 'the requester',
    when: 'before a decision',
    audit: ['request.cancelled'],
  },
  lapse: {
    from: 'pending',
    event: 'expire',
    to: 'expired',
    who: 'the broker (whoever touches it, or the sweep)',
    when: '`pending_ttl` has passed without a decision',
    audit: ['request.expired'],
  },
  mint: {
    from: 'approved',
    event: 'mint',
    to: 'approved',
    who: 'the requester',
    when: 'inside the window; the credential expires at its end',
    audit: ['credential.minted'],
  },
  revoke: {
    from: 'approved',
    event: 'revoke',
    to: 'revoked',
    who: 'the requester, an approver of the role or an admin',
    when: 'before the window ends',
    audit: ['request.revoked'],
  },
  end: {
    from: 'approved',
    event: 'expire',
    to: 'expired',
    who: 'the broker (whoever touches it, or the sweep)',
    when: 'the window has ended',
    audit: ['request.expired'],
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

/** States no event leaves: the request is over. */
export const FINAL_STATES: readonly RequestState[] = ['denied', 'cancelled', 'expired', 'revoked'];

/** States whose window is open: a credential may be minted. */
export const ACTIVE_STATES: readonly RequestState[] = ['approved'];

/** States with a deadline the broker enforces by itself (`expires_at`). */
export const TIMED_STATES: readonly RequestState[] = ['pending', 'approved'];
