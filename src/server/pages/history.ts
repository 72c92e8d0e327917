import type { Identity } from '../../api/schemas.js';
import type { Db } from '../store/database.js';

/**
 * When and by whom a request reached its current state, read from its audit events: the wire
 * object says a request is `revoked` but not who revoked it or when, and a page should say
 * "revoked by lee at 14:20". Only the request's own events are read (by the `request_id` index),
 * newest first, and only after the caller was allowed to see the request.
 */
export interface Transition {
  /** The audit event type, e.g. `request.revoked`. */
  type: string;
  at: string;
  actor: Identity | null;
}

export async function lastTransition(db: Db, requestId: string): Promise<Transition | undefined> {
  const row = await db.kysely
    .selectFrom('audit_events')
    .select(['type', 'at', 'actor'])
    .where('request_id', '=', requestId)
    .where('type', 'like', 'request.%')
    .where('type', '!=', 'request.created')
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) return undefined;
  let actor: Identity | null = null;
  try {
    actor = row.actor ? (JSON.parse(row.actor) as Identity) : null;
  } catch {
    actor = null;
  }
  return { type: row.type, at: row.at, actor };
}
