import type { AuditEventType, Identity, RequestEventType } from '../../../api/schemas.js';
import { REQUEST_EVENT_TYPES } from '../../../api/schemas.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';
import {
  type Machine,
  type MachineState,
  type Transition,
  type TransitionId,
  transition,
} from './table.js';

/**
 * What a rule decides: one step per machine it moves, each a row of the transition table with
 * that row's audit events, the fields of the request it changes, and the review it records.
 * Built only by {@link changeOf} (and {@link withStep}), which take the audit event types from the
 * table row and check the row's `from` and `to` against the request before and after, so a
 * change can neither write other events than its transitions say nor land in another state.
 */
export interface Change {
  steps: Step[];
  /** Fields to write; `state` is the request step's `to` whenever it differs from the row's. */
  patch: Partial<RequestRow>;
  /** A review to insert (review transitions). */
  review?: Omit<ReviewRow, 'request_id'>;
}

export interface Step {
  transition: Transition;
  audit: AuditDraft[];
}

export interface AuditDraft {
  type: AuditEventType;
  actor: Identity | null;
  data: Record<string, unknown>;
}

/** Who the actor and data of each audit event of a transition are. */
export type AuditContent = Partial<
  Record<AuditEventType, { actor: Identity | null; data: Record<string, unknown> }>
>;

/** The state a request is in, in one machine; a request not yet filed (null) is `new`/`idle`/`none`. */
export function stateIn(machine: Machine, row: Partial<RequestRow> | null): MachineState {
  switch (machine) {
    case 'request':
      return row?.state ?? 'new';
    case 'extension':
      return row?.extension_state === 'pending' ? 'extension_pending' : 'idle';
    case 'break-glass':
      if (!row?.break_glass) return 'none';
      return row.break_glass_verdict ?? 'awaiting_review';
  }
}

export function changeOf(
  id: TransitionId,
  row: RequestRow | null,
  patch: Partial<RequestRow>,
  content: AuditContent,
  review?: Change['review'],
): Change {
  return withStep({ steps: [], patch: {}, ...(review ? { review } : {}) }, id, row, patch, content);
}

/** `change` with one more step, applied after it (on the row as the change leaves it). */
export function withStep(
  change: Change,
  id: TransitionId,
  row: RequestRow | null,
  patch: Partial<RequestRow>,
  content: AuditContent,
): Change {
  const t = transition(id);
  const before = row === null && change.steps.length === 0 ? null : { ...row, ...change.patch };
  const from = stateIn(t.machine, before);
  if (t.from !== from) throw new Error(`transition ${id} starts from ${t.from}, not ${from}`);
  const full =
    t.machine === 'request' && from !== t.to
      ? { ...patch, state: t.to as RequestRow['state'] }
      : patch;
  const merged = { ...change.patch, ...full };
  const after = stateIn(t.machine, { ...row, ...merged });
  if (after !== t.to) throw new Error(`transition ${id} leads to ${t.to}, not ${after}`);
  const audit = t.audit.map((type) => {
    const c = content[type];
    if (!c) throw new Error(`transition ${id} needs the content of its ${type} event`);
    return { type, actor: c.actor, data: c.data };
  });
  return { ...change, steps: [...change.steps, { transition: t, audit }], patch: merged };
}

/** All audit events of a change, in order. */
export function auditOf(change: Change): AuditDraft[] {
  return change.steps.flatMap((s) => s.audit);
}

/** An event of a change that long polls wake on and webhooks receive, with who caused it. */
export interface Published {
  type: RequestEventType;
  actor: Identity | null;
}

export function publishedOf(change: Change): Published[] {
  return auditOf(change)
    .filter((a): a is AuditDraft & { type: RequestEventType } =>
      (REQUEST_EVENT_TYPES as readonly string[]).includes(a.type),
    )
    .map((a) => ({ type: a.type, actor: a.actor }));
}
