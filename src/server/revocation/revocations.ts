import type { Kysely } from 'kysely';
import type { Identity, Revocation } from '../../api/schemas.js';
import type { Database } from '../store/schema.js';
import { liveCredentialsOf } from './credentials.js';

/**
 * Revoked grants as relying parties follow them (`GET /v1/revocations`): read from the audit log,
 * where each revocation is a `request.revoked` event, in the order of its sequence numbers. A
 * revocation's event commits with the revocation under the audit head's lock, so sequence order
 * is commit order: a follower that asks for everything after the last number it saw never misses
 * one, across replicas. Each entry names the grant's credentials that were still valid then.
 */

type Q = Kysely<Database>;

export const REVOKED_EVENT = 'request.revoked';

/** How a revocation is told: who, when, why (the `request.revoked` audit event). */
export interface RevocationFacts {
  seq: number;
  requestId: string;
  at: string;
  by: Identity | null;
  reason: string | null;
}

function parseActor(text: string | null): Identity | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as Partial<Identity>;
    if (typeof v.iss !== 'string' || typeof v.sub !== 'string') return null;
    return { iss: v.iss, sub: v.sub, name: typeof v.name === 'string' ? v.name : null };
  } catch {
    return null;
  }
}

function parseReason(data: string): string | null {
  try {
    const v = JSON.parse(data) as { reason?: unknown };
    return typeof v.reason === 'string' && v.reason !== '' ? v.reason : null;
  } catch {
    return null;
  }
}

function factsOf(row: {
  seq: number;
  request_id: string | null;
  at: string;
  actor: string | null;
  data: string;
}): RevocationFacts {
  return {
    seq: Number(row.seq),
    requestId: row.request_id ?? '',
    at: row.at,
    by: parseActor(row.actor),
    reason: parseReason(row.data),
  };
}

/**
 * When a revocation can be forgotten: no credential outlives the latest `exp` among the grant's
 * live ones. Without any on record (minted by a version that kept none), the window's end.
 */
export function forgetAfter(live: readonly { expires_at: number }[], windowEnd: number): number {
  if (live.length === 0) return windowEnd;
  return Math.min(
    windowEnd,
    live.reduce((m, c) => Math.max(m, c.expires_at), 0),
  );
}

/** Who revoked a request, when and why; undefined when it was not revoked. */
export async function revocationOf(q: Q, requestId: string): Promise<RevocationFacts | undefined> {
  const row = await q
    .selectFrom('audit_events')
    .select(['seq', 'request_id', 'at', 'actor', 'data'])
    .where('request_id', '=', requestId)
    .where('type', '=', REVOKED_EVENT)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? factsOf(row) : undefined;
}

/** The sequence number of the latest revocation (0: none yet): where a follower starts. */
export async function latestRevocationSeq(q: Q): Promise<number> {
  const row = await q
    .selectFrom('audit_events')
    .select('seq')
    .where('type', '=', REVOKED_EVENT)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? Number(row.seq) : 0;
}

/** Revocations after `afterSeq`, oldest first, at most `limit`. */
export async function revocationsAfter(q: Q, afterSeq: number, limit: number) {
  const rows = await q
    .selectFrom('audit_events')
    .select(['seq', 'request_id', 'at', 'actor', 'data'])
    .where('type', '=', REVOKED_EVENT)
    .where('seq', '>', afterSeq)
    .orderBy('seq', 'asc')
    .limit(limit)
    .execute();
  return entries(q, rows.map(factsOf));
}

/**
 * Revocations whose grant's window has not ended at `now` and whose event is at most `upToSeq`,
 * oldest first: what a relying party must refuse right now (the list without a cursor).
 */
export async function currentRevocations(q: Q, now: number, upToSeq: number, limit: number) {
  const requests = await q
    .selectFrom('requests')
    .select('id')
    .where('state', '=', 'revoked')
    .where('expires_at', '>', now)
    .orderBy('expires_at', 'asc')
    .limit(limit)
    .execute();
  if (requests.length === 0) return [];
  const rows = await q
    .selectFrom('audit_events')
    .select(['seq', 'request_id', 'at', 'actor', 'data'])
    .where('type', '=', REVOKED_EVENT)
    .where(
      'request_id',
      'in',
      requests.map((r) => r.id),
    )
    .where('seq', '<=', upToSeq)
    .orderBy('seq', 'asc')
    .execute();
  return entries(q, rows.map(factsOf));
}

/** The wire entries of `facts`: role and window from the request, the live credentials' jtis. */
async function entries(q: Q, facts: RevocationFacts[]): Promise<(Revocation & { seq: number })[]> {
  if (facts.length === 0) return [];
  const ids = [...new Set(facts.map((f) => f.requestId))];
  const requests = await q
    .selectFrom('requests')
    .select(['id', 'role', 'expires_at'])
    .where('id', 'in', ids)
    .execute();
  const byId = new Map(requests.map((r) => [r.id, r]));
  const revokedAt = new Map(facts.map((f) => [f.requestId, Date.parse(f.at)]));
  const credentials = await liveCredentialsOf(q, ids, revokedAt);
  const out: (Revocation & { seq: number })[] = [];
  for (const f of facts) {
    const request = byId.get(f.requestId);
    if (!request) continue;
    const live = credentials.get(f.requestId) ?? [];
    const until = forgetAfter(live, request.expires_at);
    out.push({
      seq: f.seq,
      request_id: f.requestId,
      role: request.role,
      jtis: live.map((c) => c.jti),
      revoked_at: f.at,
      revoked_by: f.by,
      reason: f.reason,
      expires_at: new Date(until).toISOString(),
    });
  }
  return out;
}
