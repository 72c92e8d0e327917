import {
  type ChainedContent,
  canonicalJson,
  type StoredEvent,
  storedEventHash,
} from '../../src/api/audit-chain.js';

/** An event as the broker stores it (`actor` and `data` as canonical JSON text), after `prev`. */
export function storedEvent(prev: string, content: ChainedContent): StoredEvent {
  const stored = {
    seq: content.seq,
    at: content.at,
    type: content.type,
    request_id: content.request_id,
    actor: content.actor === null ? null : canonicalJson(content.actor),
    data: canonicalJson(content.data),
  };
  return { ...stored, prev_hash: prev, hash: storedEventHash(prev, stored) };
}

/** The columns of `audit_events`, in the table's order. */
export const EVENT_COLUMNS = [
  'seq',
  'at',
  'type',
  'request_id',
  'actor',
  'data',
  'prev_hash',
  'hash',
] as const;

/** `e`'s values in the table's column order (for an insert of all of them). */
export const columnsOf = (e: StoredEvent): unknown[] => EVENT_COLUMNS.map((c) => e[c]);
