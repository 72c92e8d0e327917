import { randomBytes } from 'node:crypto';
import { formatDuration } from '../../api/duration.js';
import type { AuditEvent, Identity, Revocation } from '../../api/schemas.js';
import { readAudit } from '../audit/log.js';
import type { ServerClock } from '../clock.js';
import type { PeopleDirectory } from '../people/directory.js';
import { parsePrincipal } from '../policy/principal.js';
import type { Principal } from '../policy/types.js';
import { liveCredentials } from '../revocation/credentials.js';
import { forgetAfter } from '../revocation/revocations.js';
import { type Db, isDatabaseError } from '../store/database.js';
import { advanceCursor, enqueue, type NewOutboxRow, readCursor } from '../store/outbox.js';
import { getRequest, getReviews } from '../store/requests.js';
import type { RequestRow } from '../store/schema.js';
import type { Channels } from './channels.js';
import { renderEmail } from './email.js';
import { type EventFacts, type NotificationEventSpec, REMINDER_EVENT } from './events.js';
import { buildNotice, type Notice } from './message.js';
import { type Delivery, plan, type Recipients, wants } from './route.js';
import { slackMessage } from './slack.js';
import { standardEvent } from './standard.js';

/**
 * From the audit log to the outbox. Every change the broker makes commits with its audit events,
 * so routing notifications from the log (rather than from an in-memory hook after commit) loses
 * nothing when a broker dies between its commit and its notifications: the next start, or another
 * replica, routes what is left. The position reached is a cursor row moved by compare-and-set in
 * the same transaction as the rows it produced, so two replicas never route an event twice, and
 * each row's `dedupe_key` makes a second insert of the same notification a no-op besides.
 */

export interface DispatchDeps {
  db: Db;
  directory: PeopleDirectory;
  channels: Channels;
  clock: ServerClock;
  publicUrl: string;
  /** How long before a grant ends its reminder is due; null: no reminders. */
  reminderBeforeMs: number | null;
  giveUpAfterMs: number;
  /** The event table (events.ts; tests add entries for types not in it yet). */
  events: Readonly<Record<string, NotificationEventSpec>>;
  logger: { warn(obj: object, msg: string): void };
}

export interface DispatchResult {
  /** Audit events consumed (0: caught up, or another replica routed them first). */
  consumed: number;
  /** Outbox rows written. */
  queued: number;
}

class LostRace extends Error {}

export const newMessageId = () => `msg_${randomBytes(16).toString('base64url')}`;

const specOf = (table: DispatchDeps['events'], type: string) =>
  Object.hasOwn(table, type) ? table[type] : undefined;

/** Routes the audit events after the cursor, at most `limit`, into the outbox. */
export async function dispatchBatch(d: DispatchDeps, limit = 200): Promise<DispatchResult> {
  const from = await readCursor(d.db.kysely);
  const events = await readAudit(d.db.kysely, from, limit);
  if (events.length === 0) return { consumed: 0, queued: 0 };
  const to = events[events.length - 1]!.seq;
  const rows: NewOutboxRow[] = [];
  if (d.channels.any) {
    for (const ev of events) {
      try {
        rows.push(...(await rowsFor(d, ev)));
      } catch (err) {
        // A database error ends the batch (it is retried); anything else is a bug in one entry,
        // which must not hold back every later notification.
        if (isDatabaseError(err)) throw err;
        d.logger.warn(
          { err, seq: ev.seq, type: ev.type, request_id: ev.request_id },
          'could not route a notification; skipped',
        );
      }
    }
  }
  let queued = 0;
  try {
    await d.db.transaction(async (tx) => {
      queued = await enqueue(tx, rows);
      if (!(await advanceCursor(tx, from, to))) throw new LostRace();
    });
  } catch (err) {
    if (err instanceof LostRace) return { consumed: 0, queued: 0 };
    throw err;
  }
  return { consumed: events.length, queued };
}

async function rowsFor(d: DispatchDeps, ev: AuditEvent): Promise<NewOutboxRow[]> {
  const spec = specOf(d.events, ev.type);
  if (!spec || spec.scheduled) return [];
  const req = ev.request_id ? await getRequest(d.db.kysely, ev.request_id) : undefined;
  if (ev.request_id && !req) return [];
  const facts = req ? await factsOf(d, ev, req, spec) : requestlessFacts(ev);
  const now = d.clock.now();
  const out: NewOutboxRow[] = [];
  if (spec.schedulesReminder && req) out.push(...(await reminderRows(d, ev, req, facts)));
  // Events older than the retry time (a broker that was down for long) are news no more.
  if (now - Date.parse(ev.at) > d.giveUpAfterMs) return out;
  const notice = buildNotice(facts, spec, ev.at, d.publicUrl);
  for (const delivery of plan(
    facts,
    spec,
    d.channels.targets,
    d.channels.security,
    (key) => d.channels.webhooks.get(key)?.format ?? 'standard',
    await recipients(d, facts, spec, req),
  )) {
    out.push(
      row(delivery, notice, {
        eventSeq: ev.seq,
        dedupe: `ev:${ev.seq}:${delivery.channel}:${delivery.target}`,
        dueAt: now,
        deliverUntil: now + d.giveUpAfterMs,
        guard: null,
        createdAt: now,
      }),
    );
  }
  return out;
}

/**
 * The expiry reminder of a grant: scheduled at approval for `reminderBeforeMs` before the end,
 * with a guard (still approved, same end) checked when it is due, so a revoked or changed grant
 * sends none. Its dedupe key (request, end, target) makes it once per grant and window.
 */
async function reminderRows(
  d: DispatchDeps,
  ev: AuditEvent,
  req: RequestRow,
  approved: EventFacts,
): Promise<NewOutboxRow[]> {
  const spec = specOf(d.events, REMINDER_EVENT);
  if (!spec || d.reminderBeforeMs === null) return [];
  const endsAt =
    typeof ev.data.expires_at === 'string' ? Date.parse(ev.data.expires_at) : req.expires_at;
  const eventAt = Date.parse(ev.at);
  const remindAt = endsAt - d.reminderBeforeMs;
  // A grant shorter than twice the lead time would be reminded right after it was granted.
  if (Number.isNaN(endsAt) || remindAt - eventAt < d.reminderBeforeMs) return [];
  const facts: EventFacts = {
    ...approved,
    type: REMINDER_EVENT,
    actor: null,
    actorIsRequester: false,
    decision: null,
    comment: null,
    expiresAt: new Date(endsAt).toISOString(),
  };
  const notice = buildNotice(facts, spec, new Date(remindAt).toISOString(), d.publicUrl);
  const found = await recipients(d, facts, spec, req);
  return plan(
    facts,
    spec,
    d.channels.targets,
    d.channels.security,
    (key) => d.channels.webhooks.get(key)?.format ?? 'standard',
    found,
  ).map((delivery) =>
    row(delivery, notice, {
      eventSeq: ev.seq,
      dedupe: `remind:${req.id}:${endsAt}:${delivery.channel}:${delivery.target}`,
      dueAt: remindAt,
      deliverUntil: endsAt,
      guard: JSON.stringify({ state: 'approved', expires_at: endsAt }),
      createdAt: d.clock.now(),
    }),
  );
}

function row(
  delivery: Delivery,
  notice: Notice,
  t: {
    eventSeq: number;
    dedupe: string;
    dueAt: number;
    deliverUntil: number;
    guard: string | null;
    createdAt: number;
  },
): NewOutboxRow {
  const id = newMessageId();
  const body =
    delivery.channel === 'email'
      ? JSON.stringify(renderEmail(notice, delivery.reason))
      : JSON.stringify(
          delivery.format === 'slack' ? slackMessage(notice) : standardEvent(id, notice),
        );
  return {
    id,
    dedupe_key: t.dedupe,
    event_type: notice.type,
    request_id: notice.requestId,
    event_seq: t.eventSeq,
    channel: delivery.channel,
    target: delivery.target,
    priority: notice.priority === 'high' ? 1 : 0,
    body,
    guard: t.guard,
    state: 'pending',
    attempts: 0,
    due_at: t.dueAt,
    next_attempt_at: t.dueAt,
    deliver_until: t.deliverUntil,
    claimed_by: null,
    claimed_until: null,
    last_error: null,
    created_at: t.createdAt,
    done_at: null,
  };
}

const nameOf = (i: Identity | null) => (i ? (i.name ?? i.sub) : null);
const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);

/** An event about no request (an access review): what its data and actor say. */
function requestlessFacts(ev: AuditEvent): EventFacts {
  return {
    type: ev.type,
    requestId: null,
    role: text(ev.data.role) ?? '',
    requester: nameOf(ev.actor) ?? '',
    duration: text(ev.data.duration) ?? '',
    reason: text(ev.data.reason),
    ticket: null,
    actor: nameOf(ev.actor),
    actorIsRequester: false,
    decision: null,
    comment: text(ev.data.comment),
    expiresAt: null,
    data: ev.data,
  };
}

async function factsOf(
  d: DispatchDeps,
  ev: AuditEvent,
  req: RequestRow,
  spec: NotificationEventSpec,
): Promise<EventFacts> {
  const data = ev.data;
  const actorIsRequester =
    ev.actor !== null && ev.actor.iss === req.requester_iss && ev.actor.sub === req.requester_sub;
  let comment = text(data.comment);
  let decision: EventFacts['decision'] = null;
  if (ev.type === 'review.recorded') {
    decision = data.decision === 'deny' ? 'deny' : 'approve';
  } else if ((ev.type === 'request.approved' || ev.type === 'request.denied') && ev.actor) {
    decision = ev.type === 'request.denied' ? 'deny' : 'approve';
    // The decision's comment is on the review that completed it.
    const review = (await getReviews(d.db.kysely, req.id)).find(
      (r) => r.reviewer_iss === ev.actor!.iss && r.reviewer_sub === ev.actor!.sub,
    );
    comment = review?.comment ?? null;
  }
  // A revocation's reason is the revoker's comment.
  if (ev.type === 'request.revoked') comment = text(data.reason);
  // Filing and cancelling are the requester's own acts: no reviewer to name.
  const selfActs = ev.type === 'request.created' || ev.type === 'request.cancelled';
  return {
    type: ev.type,
    requestId: req.id,
    role: req.role,
    requester: req.requester_name ?? req.requester_sub,
    duration: formatDuration(req.duration_ms),
    reason: req.reason,
    ticket: req.ticket,
    actor: selfActs ? null : nameOf(ev.actor),
    actorIsRequester,
    decision,
    comment,
    // Only where a credential window opens; elsewhere `expires_at` is a pending deadline.
    expiresAt: spec.schedulesReminder ? text(data.expires_at) : null,
    data,
    ...(ev.type === 'request.revoked' ? { revocation: await revocationOf(d, ev, req) } : {}),
  };
}

/** The revocation a `request.revoked` event records, as relying parties read it. */
async function revocationOf(d: DispatchDeps, ev: AuditEvent, req: RequestRow): Promise<Revocation> {
  const jtis = Array.isArray(ev.data.jtis)
    ? ev.data.jtis.filter((j): j is string => typeof j === 'string')
    : [];
  const live = await liveCredentials(d.db.kysely, req.id, Date.parse(ev.at));
  return {
    request_id: req.id,
    role: req.role,
    jtis,
    revoked_at: ev.at,
    revoked_by: ev.actor,
    reason: text(ev.data.reason),
    expires_at: new Date(forgetAfter(live, req.expires_at)).toISOString(),
  };
}

/** Looks up only the addresses some route could use for this event. */
async function recipients(
  d: DispatchDeps,
  facts: EventFacts,
  spec: NotificationEventSpec,
  req: RequestRow | undefined,
): Promise<Recipients> {
  const audiences = new Set(spec.audiences(facts));
  const needApprovers =
    audiences.has('approvers') && wants(d.channels.targets, facts.type, facts.role, 'approvers');
  const needRequester =
    req !== undefined &&
    audiences.has('requester') &&
    wants(d.channels.targets, facts.type, facts.role, 'requester');
  if (!needApprovers && !needRequester) return { approvers: [], requester: null };
  const requester = req
    ? await d.directory.verifiedEmail(req.requester_iss, req.requester_sub)
    : null;
  let approvers: string[] = [];
  if (needApprovers) {
    const named = spec.approvers
      ? spec.approvers(facts)
      : req
        ? (JSON.parse(req.approvers) as string[])
        : [];
    const principals = named.flatMap((p): Principal[] => {
      const parsed = parsePrincipal(p);
      return 'principal' in parsed ? [parsed.principal] : [];
    });
    approvers = await d.directory.emailsFor(
      principals,
      req ? { exclude: { iss: req.requester_iss, sub: req.requester_sub, email: requester } } : {},
    );
  }
  return { approvers, requester: needRequester ? requester : null };
}
