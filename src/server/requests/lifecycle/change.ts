import type { AuditEventType, Identity, RequestEventType } from '../../../api/schemas.js';
import { REQUEST_EVENT_TYPES } from '../../../api/schemas.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';
import { type Transition, type TransitionId, transition } from './table.js';

/**
 * What a rule decides: a row of the transition table, the fields of the request it changes, the
 * review it records and its audit events. Built only by {@link changeOf}, which takes the audit
 * events' types from the table row, so a change can write no more and no fewer events than its
 * transition says.
 */
export interface Change {
  transition: Transition;
  /** Fields to write; `state` is the transition's `to` whenever it differs from the row's. */
  patch: Partial<RequestRow>;
  audit: AuditDraft[];
  /** A review to insert (review transitions). */
  review?: Omit<ReviewRow, 'request_id'>;
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

export function changeOf(
  id: TransitionId,
  row: Pick<RequestRow, 'state'> | null,
  patch: Partial<RequestRow>,
  content: AuditContent,
  review?: Change['review'],
): Change {
  const t = transition(id);
  const from = row === null ? 'new' : row.state;
  if (t.from !== from) throw new Error(`transition ${id} starts from ${t.from}, not ${from}`);
  const full = from === t.to ? patch : { ...patch, state: t.to };
  const audit = t.audit.map((type) => {
    const c = content[type];
    if (!c) throw new Error(`transition ${id} needs the content of its ${type} event`);
    return { type, actor: c.actor, data: c.data };
  });
  return { transition: t, patch: full, audit, ...(review ? { review } : {}) };
}

/** The events of a change that long polls wake on and webhooks receive. */
export function publishedOf(change: Change): RequestEventType[] {
  return change.audit
    .map((a) => a.type)
    .filter((t): t is RequestEventType => (REQUEST_EVENT_TYPES as readonly string[]).includes(t));
}
