import type { CheckpointRecord } from '../../../api/audit-checkpoint.js';
import { checkpointToOcsf, toOcsf } from '../../../api/audit-ocsf.js';
import type { AuditEvent, AuditRequestContext } from '../../../api/schemas.js';
import { checkpointsBetween, requestContexts } from '../../store/audit-stream.js';
import type { Db } from '../../store/database.js';
import { toRecord } from '../checkpoints.js';
import { readAudit } from '../log.js';
import type { SinkFormat } from './settings.js';

/**
 * What a sink delivers, in order: the audit events after its cursor, each checkpoint right after
 * the event it names, and the records they become (a JSON-lines event as `GET /v1/audit` gives
 * it, or OCSF). A checkpoint record never carries a top-level `seq`, so receivers that drop
 * duplicates by `seq` never drop one.
 */

export type SinkItem =
  | { kind: 'event'; event: AuditEvent }
  | { kind: 'checkpoint'; checkpoint: CheckpointRecord };

/** Where a sink stands: events up to `seq` and checkpoints up to `checkpoint_seq` delivered. */
export interface SinkPosition {
  seq: number;
  checkpoint_seq: number;
}

export interface SinkBatch {
  items: SinkItem[];
  /** The position once every item is delivered. */
  to: SinkPosition;
}

/** The next items after `from`: at most `limit` events, and the checkpoints due among them. */
export async function nextBatch(db: Db, from: SinkPosition, limit: number): Promise<SinkBatch> {
  const events = await readAudit(db.kysely, from.seq, limit);
  const upTo = events.length > 0 ? events[events.length - 1]!.seq : from.seq;
  const checkpoints = (await checkpointsBetween(db.kysely, from.checkpoint_seq, upTo, 100)).map(
    toRecord,
  );
  const items: SinkItem[] = [];
  let c = 0;
  // Checkpoints of events already delivered (made after the sink passed them) go first.
  while (c < checkpoints.length && checkpoints[c]!.seq <= from.seq)
    items.push({ kind: 'checkpoint', checkpoint: checkpoints[c++]! });
  let last = c > 0 ? checkpoints[c - 1]!.seq : from.checkpoint_seq;
  for (const event of events) {
    items.push({ kind: 'event', event });
    while (c < checkpoints.length && checkpoints[c]!.seq <= event.seq) {
      last = checkpoints[c]!.seq;
      items.push({ kind: 'checkpoint', checkpoint: checkpoints[c++]! });
    }
  }
  return { items, to: { seq: upTo, checkpoint_seq: Math.max(last, from.checkpoint_seq) } };
}

export interface RecordOptions {
  format: SinkFormat;
  /** The broker's public URL (OCSF: the service and session issuer). */
  broker: string;
}

/** The records of a batch, in order; OCSF looks up the requests the events name. */
export async function recordsOf(
  db: Db,
  items: readonly SinkItem[],
  opts: RecordOptions,
): Promise<Record<string, unknown>[]> {
  let requests: Record<string, AuditRequestContext> = {};
  if (opts.format === 'ocsf') {
    const ids = items.flatMap((i) =>
      i.kind === 'event' && i.event.request_id ? [i.event.request_id] : [],
    );
    requests = await requestContexts(db.kysely, ids);
  }
  return items.map((i) => recordOf(i, opts, requests));
}

export function recordOf(
  item: SinkItem,
  opts: RecordOptions,
  requests: Record<string, AuditRequestContext> = {},
): Record<string, unknown> {
  if (item.kind === 'checkpoint')
    return opts.format === 'ocsf'
      ? checkpointToOcsf(item.checkpoint, { broker: opts.broker })
      : { type: 'audit.checkpoint', checkpoint: item.checkpoint };
  const e = item.event;
  if (opts.format === 'ocsf')
    return toOcsf(e, {
      broker: opts.broker,
      request: e.request_id ? requests[e.request_id] : undefined,
    });
  return { ...e };
}

/** The time of an item (HEC's `time`): the event's, or when the checkpoint was signed. */
export const itemTime = (i: SinkItem): number =>
  Date.parse(i.kind === 'event' ? i.event.at : i.checkpoint.signed_at);
