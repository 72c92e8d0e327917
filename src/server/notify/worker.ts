import { randomBytes } from 'node:crypto';
import { type ServerClock, systemClock } from '../clock.js';
import type { Metrics } from '../metrics.js';
import type { PeopleDirectory } from '../people/directory.js';
import type { Db } from '../store/database.js';
import { backlog, claimDue, purgeDone, releaseClaims, settle } from '../store/outbox.js';
import { getRequest } from '../store/requests.js';
import type { OutboxRow } from '../store/schema.js';
import type { Channels } from './channels.js';
import { dispatchBatch } from './dispatch.js';
import type { RenderedEmail } from './email.js';
import { NOTIFICATION_EVENTS, type NotificationEventSpec } from './events.js';
import { Jobs, Pump, retryDelay } from './loop.js';
import type { NotificationSettings } from './settings.js';
import { postWebhook } from './webhook.js';

/**
 * The notification worker, one per replica: routes new audit events into the outbox, claims due
 * rows and delivers them, retrying failures with exponential backoff and jitter (longer when the
 * receiver sends Retry-After) until the row's time runs out. It runs beside the request path and
 * never in it: a transition only calls kick(), which returns at once, so a receiver that is slow,
 * down or hanging costs the requester nothing.
 */

export interface NotifyTuning {
  /** How often the outbox is looked at without a kick (default 2 s; other replicas' events). */
  pollIntervalMs?: number;
  /** Per delivery attempt (default 10 s). */
  timeoutMs?: number;
  /** First retry delay, doubled per attempt with jitter (default 5 s). */
  backoffMs?: number;
  /** Longest delay between attempts (default 5 min); Retry-After is honoured up to 1 h. */
  maxBackoffMs?: number;
  /** Deliveries in flight per replica (default 8); one target's notifications go one at a time. */
  concurrency?: number;
  /** How long close() lets deliveries in flight finish (default 5 s). */
  closeTimeoutMs?: number;
  fetch?: typeof globalThis.fetch;
  /** The clock of `webhook-timestamp` (real time: receivers compare it with theirs). */
  wallClock?: ServerClock;
  /** The event table (default events.ts); tests add types other branches will bring. */
  events?: Readonly<Record<string, NotificationEventSpec>>;
}

export interface WorkerLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface NotificationsDeps {
  db: Db;
  clock: ServerClock;
  logger: WorkerLogger;
  metrics: Metrics;
  directory: PeopleDirectory;
  channels: Channels;
  publicUrl: string;
  settings: Pick<NotificationSettings, 'reminderBeforeMs' | 'giveUpAfterMs'>;
  tuning?: NotifyTuning;
}

const RETENTION_MS = 7 * 24 * 3_600_000;
const DISPATCH_BATCH = 200;

export class NotificationWorker {
  readonly #d: NotificationsDeps;
  readonly #t: Required<Omit<NotifyTuning, 'events'>> & Pick<NotifyTuning, 'events'>;
  readonly #owner = `w_${randomBytes(9).toString('base64url')}`;
  /** One job per target in flight: one target's notifications go one at a time, in order. */
  readonly #jobs = new Jobs();
  readonly #pump: Pump;
  #closed = false;
  #lastStats = 0;
  #lastPurge = 0;
  #lastProblem = 0;

  constructor(deps: NotificationsDeps) {
    this.#d = deps;
    const t = deps.tuning ?? {};
    this.#t = {
      pollIntervalMs: t.pollIntervalMs ?? 2_000,
      timeoutMs: t.timeoutMs ?? 10_000,
      backoffMs: t.backoffMs ?? 5_000,
      maxBackoffMs: t.maxBackoffMs ?? 300_000,
      concurrency: t.concurrency ?? 8,
      closeTimeoutMs: t.closeTimeoutMs ?? 5_000,
      fetch: t.fetch ?? globalThis.fetch,
      wallClock: t.wallClock ?? systemClock,
      events: t.events,
    };
    this.#pump = new Pump(() => this.#tick(), this.#t.pollIntervalMs);
  }

  start(): void {
    this.#pump.start();
  }

  /** Something was committed: look now. Returns at once and never throws. */
  kick(): void {
    // Nothing routed: the poll only moves the cursor; no need to add work to every transition.
    if (this.#closed || !this.#d.channels.any) return;
    this.#pump.kick();
  }

  async #tick(): Promise<void> {
    try {
      await this.#route();
      await this.#claim();
      const now = this.#d.clock.now();
      if (now - this.#lastStats >= 5_000) {
        this.#lastStats = now;
        const b = await backlog(this.#d.db.kysely, now);
        this.#d.metrics.notificationQueue.depth = b.depth;
        this.#d.metrics.notificationQueue.oldestAgeSeconds =
          b.oldestDueAt === null ? 0 : Math.max(0, Math.round((now - b.oldestDueAt) / 1000));
      }
      if (now - this.#lastPurge >= 3_600_000) {
        this.#lastPurge = now;
        await purgeDone(this.#d.db.kysely, now - RETENTION_MS);
      }
    } catch (err) {
      // The database is away (or a bug): say so at most once a minute and try again next tick.
      const now = Date.now();
      if (now - this.#lastProblem >= 60_000) {
        this.#lastProblem = now;
        this.#warn({ err }, 'notifications cannot be routed or delivered right now; retrying');
      }
    }
  }

  async #route(): Promise<void> {
    for (let i = 0; i < 20 && !this.#closed; i++) {
      const r = await dispatchBatch(
        {
          db: this.#d.db,
          directory: this.#d.directory,
          channels: this.#d.channels,
          clock: this.#d.clock,
          publicUrl: this.#d.publicUrl,
          reminderBeforeMs: this.#d.settings.reminderBeforeMs,
          giveUpAfterMs: this.#d.settings.giveUpAfterMs,
          events: this.#t.events ?? NOTIFICATION_EVENTS,
          logger: { warn: (o, m) => this.#warn(o, m) },
        },
        DISPATCH_BATCH,
      );
      if (r.consumed < DISPATCH_BATCH) return;
    }
  }

  async #claim(): Promise<void> {
    const free = this.#t.concurrency - this.#jobs.size;
    if (free <= 0 || this.#closed) return;
    const now = this.#d.clock.now();
    const rows = await claimDue(this.#d.db, {
      now,
      owner: this.#owner,
      // Long enough for every row of the batch to be tried in turn; after a crash, this long.
      until: now + this.#t.timeoutMs * free + 30_000,
      limit: free,
      busy: this.#jobs.busyKeys(),
    });
    // One target's rows in order, one at a time; different targets in parallel.
    const byTarget = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const list = byTarget.get(row.target) ?? [];
      list.push(row);
      byTarget.set(row.target, list);
    }
    for (const [target, list] of byTarget) {
      this.#jobs.run(
        target,
        async () => {
          for (const row of list) {
            if (this.#jobs.signal.aborted) return;
            await this.#deliver(row).catch((err: unknown) =>
              this.#warn({ err, notification: row.id }, 'notification delivery failed'),
            );
          }
        },
        () => this.kick(),
      );
    }
  }

  async #deliver(row: OutboxRow): Promise<void> {
    const d = this.#d;
    const now = d.clock.now();
    const where = this.#where(row);
    if (row.guard && row.request_id && !(await this.#stillApplies(row, now))) {
      await settle(d.db.kysely, row.id, this.#owner, {
        state: 'dropped',
        done_at: now,
        last_error: 'no longer applies',
      });
      d.metrics.notificationsDropped.inc({ reason: 'no_longer_applies' });
      return;
    }
    if (now > row.deliver_until) {
      await this.#giveUp(
        row,
        now,
        where,
        row.last_error ?? 'its time ran out before it could be sent',
      );
      return;
    }
    let outcome: { ok: boolean; retry: boolean; retryAfterMs?: number; detail: string };
    if (row.channel === 'webhook') {
      const hook = d.channels.webhooks.get(row.target);
      if (!hook) return this.#drop(row, now, where, 'webhook no longer configured');
      outcome = await postWebhook({
        url: hook.url,
        body: row.body,
        id: row.id,
        secret: hook.secret,
        timestamp: Math.floor(this.#t.wallClock.now() / 1000),
        timeoutMs: this.#t.timeoutMs,
        signal: this.#jobs.signal,
        fetch: this.#t.fetch,
      });
    } else {
      const mailer = d.channels.mailer;
      if (!mailer) return this.#drop(row, now, where, 'smtp no longer configured');
      outcome = await mailer.send(row.target, JSON.parse(row.body) as RenderedEmail, {
        id: row.id,
        type: row.event_type,
        high: row.priority > 0,
      });
    }
    // Cut short by shutdown: not an attempt; the claim is released and the next start sends it.
    if (!outcome.ok && this.#jobs.signal.aborted) return;
    const after = d.clock.now();
    const attempts = row.attempts + 1;
    if (outcome.ok) {
      await settle(d.db.kysely, row.id, this.#owner, {
        state: 'sent',
        attempts,
        done_at: after,
        last_error: null,
      });
      d.metrics.notificationsSent.inc({ channel: row.channel, event: row.event_type });
      return;
    }
    if (!outcome.retry) {
      await this.#giveUp({ ...row, attempts }, after, where, outcome.detail);
      return;
    }
    const delay = retryDelay(attempts, this.#t, outcome.retryAfterMs);
    if (after + delay > row.deliver_until) {
      await this.#giveUp({ ...row, attempts }, after, where, outcome.detail);
      return;
    }
    await settle(d.db.kysely, row.id, this.#owner, {
      attempts,
      next_attempt_at: after + delay,
      last_error: outcome.detail,
    });
    d.metrics.notificationsRetried.inc({ channel: row.channel });
    this.#warn(
      { ...where, attempt: attempts, error: outcome.detail, retry_in_s: Math.round(delay / 1000) },
      'notification delivery failed; will retry',
    );
  }

  async #stillApplies(row: OutboxRow, now: number): Promise<boolean> {
    const guard = JSON.parse(row.guard!) as { state: string; expires_at: number };
    const req = await getRequest(this.#d.db.kysely, row.request_id!);
    return (
      req !== undefined &&
      req.state === guard.state &&
      req.expires_at === guard.expires_at &&
      now < req.expires_at
    );
  }

  async #giveUp(row: OutboxRow, now: number, where: object, error: string): Promise<void> {
    await settle(this.#d.db.kysely, row.id, this.#owner, {
      state: 'failed',
      attempts: row.attempts,
      done_at: now,
      last_error: error,
    });
    this.#d.metrics.notificationsFailed.inc({ channel: row.channel });
    this.#warn(
      { ...where, attempts: row.attempts, error },
      'notification delivery failed; giving up',
    );
  }

  async #drop(row: OutboxRow, now: number, where: object, why: string): Promise<void> {
    await settle(this.#d.db.kysely, row.id, this.#owner, {
      state: 'dropped',
      done_at: now,
      last_error: why,
    });
    this.#d.metrics.notificationsDropped.inc({ reason: 'target_removed' });
    this.#warn({ ...where, error: why }, 'notification dropped');
  }

  /** What a log line says about a row: a webhook's origin (its path may be its secret). */
  #where(row: OutboxRow): Record<string, unknown> {
    return {
      channel: row.channel,
      target:
        row.channel === 'webhook'
          ? (this.#d.channels.webhooks.get(row.target)?.origin ?? row.target)
          : row.target,
      event: row.event_type,
      request_id: row.request_id,
      notification: row.id,
    };
  }

  #warn(obj: object, msg: string): void {
    try {
      this.#d.logger.warn(obj, msg);
    } catch {}
  }

  /** Stops: lets deliveries in flight finish (bounded), then hands unfinished rows back. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pump.close();
    await this.#jobs.drain(this.#t.closeTimeoutMs);
    try {
      await releaseClaims(this.#d.db.kysely, this.#owner);
    } catch {}
    this.#d.channels.mailer?.close();
  }
}
