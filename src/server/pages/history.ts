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

/** One event of a grant's extensions (`extension.*`), for the request page's history. */
export interface ExtensionEvent {
  type: string;
  at: string;
  actor: Identity | null;
  data: Record<string, unknown>;
}

/**
 * The latest `limit` extension events of a request, oldest first: what the page says about past
 * extensions ("extended by 30m by lee at 14:02"), which the wire object sums up in `extended`.
 */
export async function extensionEvents(
  db: Db,
  requestId: string,
  limit = 60,
): Promise<ExtensionEvent[]> {
  const rows = await db.kysely
    .selectFrom('audit_events')
    .select(['type', 'at', 'actor', 'data'])
    .where('request_id', '=', requestId)
    .where('type', 'like', 'extension.%')
    .orderBy('seq', 'desc')
    .limit(limit)
    .execute();
  const parse = <T>(text: string | null, fallback: T): T => {
    try {
      return text ? (JSON.parse(text) as T) : fallback;
    } catch {
      return fallback;
    }
  };
  return rows.reverse().map((r) => ({
    type: r.type,
    at: r.at,
    actor: parse<Identity | null>(r.actor, null),
    data: parse<Record<string, unknown>>(r.data, {}),
  }));
}
