import type { Kysely } from 'kysely';
import { HIGH_PRIORITY_EVENTS } from '../../api/schemas.js';
import { appendAudit, type NewAuditEvent } from '../audit/log.js';
import { type ChangeHub, notifyReplicas, REVOCATIONS_TOPIC } from '../changes.js';
import type { ServerClock } from '../clock.js';
import { AuditAppendError, notFound } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { type Db, isUniqueViolation } from '../store/database.js';
import {
  getRequest,
  getReviews,
  insertRequest,
  insertReview,
  updateRequest,
} from '../store/requests.js';
import type { Database, RequestRow, ReviewRow } from '../store/schema.js';
import {
  alreadyReviewed,
  auditOf,
  type Change,
  endsRequest,
  type Published,
  publishedOf,
  settle,
} from './lifecycle/index.js';

import type { RequestEvent } from './types.js';
import { toWire } from './wire.js';

/**
 * How the service writes what the lifecycle decided: one transaction per change, the request row
 * locked for update, the change, its review and its audit events committed together; afterwards
 * (never before the commit) long polls are woken, the notifier told and transitions counted.
 */

type Tx = Kysely<Database>;

/** A transaction's outcome: what to answer, and what happened (to publish after commit). */
export interface Written {
  row: RequestRow;
  reviews: ReviewRow[];
  events: Published[];
  /** Set when the transaction found the request's time up (and expired it) instead of acting. */
  expiredInstead?: boolean;
  review?: { decision: 'approve' | 'deny'; comment: string | null };
}

export interface WriterDeps {
  db: Db;
  clock: ServerClock;
  hub: ChangeHub;
  metrics: Metrics;
  onEvent?: ((event: RequestEvent) => void) | undefined;
}

export class RequestWriter {
  constructor(private readonly deps: WriterDeps) {}

  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.deps.db.transaction(fn);
  }

  /** The request re-read inside the transaction, locked for update (PostgreSQL `FOR UPDATE`). */
  async lock(tx: Tx, id: string): Promise<RequestRow> {
    const row = await getRequest(tx, id, this.deps.db.dialect);
    if (!row) throw notFound(`no request ${id}`);
    return row;
  }

  /**
   * Writes `change` to the locked `row` (or inserts it, for a new request): its review, its
   * fields, its audit events. Returns the row as it now is.
   */
  async commit(tx: Tx, row: RequestRow | null, change: Change, now: number): Promise<RequestRow> {
    let next: RequestRow;
    if (row === null) {
      const fresh = change.patch as Omit<RequestRow, 'seq'>;
      const seq = await insertRequest(tx, fresh);
      next = { ...fresh, seq };
    } else {
      if (change.review) {
        try {
          await insertReview(tx, { request_id: row.id, ...change.review });
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyReviewed();
          throw err;
        }
      }
      if (Object.keys(change.patch).length > 0) await updateRequest(tx, row.id, change.patch);
      next = { ...row, ...change.patch };
    }
    await this.audit(
      tx,
      now,
      auditOf(change).map((a) => ({
        type: a.type,
        request_id: next.id,
        actor: a.actor,
        data: a.data,
      })),
    );
    return next;
  }

  /**
   * Inside a transaction, on a locked row: applies what time alone changes (a deadline passed, a
   * start came). Returns the row as it now is and what happened; `expiredInstead` when that ended
   * the request, for the caller to answer instead of acting.
   */
  async settleLocked(tx: Tx, locked: RequestRow, now: number): Promise<Written> {
    const change = settle(locked, now);
    if (!change) return { row: locked, reviews: [], events: [] };
    const row = await this.commit(tx, locked, change, now);
    return {
      row,
      reviews: await getReviews(tx, row.id),
      events: publishedOf(change),
      ...(endsRequest(change, row) ? { expiredInstead: true } : {}),
    };
  }

  async audit(tx: Tx, now: number, events: NewAuditEvent[]): Promise<void> {
    // Before the append: PostgreSQL delivers the notification only at commit, and the append
    // holds the audit head's lock until then, so nothing else should run after it.
    if (this.deps.db.dialect === 'postgres' && events[0]?.request_id) {
      await notifyReplicas(tx, events[0].request_id);
      if (events.some((e) => e.type === 'request.revoked')) {
        await notifyReplicas(tx, REVOCATIONS_TOPIC);
      }
    }
    try {
      await appendAudit(tx, this.deps.db.dialect, now, events);
    } catch (err) {
      if (err instanceof AuditAppendError) this.deps.metrics.auditFailures.inc();
      throw err;
    }
    for (const e of events) this.deps.metrics.auditAppends.inc({ type: e.type });
  }

  /** After a commit: wake long polls, tell the notifier, count transitions. */
  published(w: Written): void {
    if (w.events.length === 0) return;
    this.deps.hub.publish(w.row.id);
    if (w.events.some((e) => e.type === 'request.revoked'))
      this.deps.hub.publish(REVOCATIONS_TOPIC);
    for (const { type } of w.events) {
      if (type.startsWith('request.') && type !== 'request.created')
        this.deps.metrics.transitions.inc({ to: type.slice('request.'.length) });
    }
    if (!this.deps.onEvent) return;
    const request = toWire(w.row, w.reviews);
    const at = new Date(this.deps.clock.now()).toISOString();
    for (const { type, actor } of w.events) {
      try {
        this.deps.onEvent({
          type,
          request,
          actor,
          review: w.review ?? null,
          at,
          priority: HIGH_PRIORITY_EVENTS.includes(type) ? 'high' : 'normal',
        });
      } catch {
        // notification is best effort and never undoes a committed change
      }
    }
  }
}
