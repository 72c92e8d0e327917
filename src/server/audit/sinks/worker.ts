import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { jsonLine } from '../../../api/json-line.js';
import type { Secret } from '../../../api/secret.js';
import { type ServerClock, systemClock } from '../../clock.js';
import { ConfigError } from '../../config.js';
import type { Metrics } from '../../metrics.js';
import { Jobs, Pump, retryDelay } from '../../notify/loop.js';
import { NotifySettingError, resolveSecret, type SecretRef } from '../../notify/settings.js';
import { makePrivateDir } from '../../private-files.js';
import {
  advanceSink,
  auditHead,
  claimSink,
  ensureSinkCursor,
  eventTime,
  releaseSink,
  sinkCursors,
  sinkFailed,
} from '../../store/audit-stream.js';
import type { Db } from '../../store/database.js';
import { FileSink } from './file-sink.js';
import { deliverHttp, type HttpSinkSpec } from './http-sink.js';
import { nextBatch, recordsOf, type SinkBatch, type SinkPosition } from './items.js';
import type { SinkSpec } from './settings.js';

/**
 * The audit sinks' worker, one per replica, on the notification worker's machinery (notify/loop.ts:
 * the ticking pump, one job per sink, backoff with jitter and Retry-After; notify/webhook.ts: the
 * signed POST). Each sink follows the audit log from its own cursor, at least once and in order:
 * a batch is delivered, then the cursor moves past it, so a crash or a receiver that is down
 * costs a repeat (recognisable by `seq`), never a gap. A sink never gives up and never blocks a
 * transition: it falls behind, which shows in /metrics and /readyz, and catches up.
 *
 * HTTP sinks keep their cursor in `audit_sink_cursors`, moved by compare-and-set under a lease, so
 * one replica at a time delivers each (in order) and another takes over when it stops. File sinks
 * are per replica; the file is their cursor (file-sink.ts).
 */

export interface SinkTuning {
  /** How often sinks look for new events without a kick (default 1 s). */
  pollIntervalMs?: number;
  /** Per HTTP attempt (default 10 s). */
  timeoutMs?: number;
  /** First retry delay, doubled per failed attempt with jitter (default 1 s). */
  backoffMs?: number;
  /** Longest delay between attempts (default 5 min); Retry-After is honoured up to 1 h. */
  maxBackoffMs?: number;
  /** How long close() lets deliveries in flight finish (default 5 s). */
  closeTimeoutMs?: number;
  /** How long a replica holds an HTTP sink between batches (default 60 s). */
  leaseMs?: number;
  fetch?: typeof globalThis.fetch;
  /** The clock of `webhook-timestamp` (real time: receivers compare it with theirs). */
  wallClock?: ServerClock;
}

/** A sink as /readyz and the metrics show it. */
export interface SinkStatus {
  name: string;
  kind: SinkSpec['kind'];
  /** The last event delivered (null until the sink has started). */
  delivered_seq: number | null;
  lag_events: number;
  /** How long the oldest undelivered event has waited (0 when caught up). */
  lag_seconds: number;
  /** Failed attempts in a row (0: the last attempt succeeded). */
  attempts: number;
  last_error: string | null;
  /** Readiness fails past this lag (null: never). */
  max_lag_seconds: number | null;
}

export interface OpenedSink {
  spec: SinkSpec;
  /** A webhook's signing secret, a HEC token (null for files). */
  secret: Secret | null;
}

/**
 * Resolves secrets and prepares files at start, before the port opens: a missing variable, a
 * secret not in `webhook_secrets`, a file that cannot be created or that others can read stops
 * the broker naming the sink.
 */
export function openSinks(
  specs: readonly SinkSpec[],
  webhookSecrets: Record<string, SecretRef>,
  env: Readonly<Record<string, string | undefined>>,
): OpenedSink[] {
  return specs.map((spec, i) => {
    const where = `audit_sinks[${i}] (${spec.name})`;
    try {
      if (spec.kind === 'file') {
        try {
          makePrivateDir(dirname(spec.path));
        } catch (err) {
          throw new ConfigError(
            `${where}: cannot create the directory of ${spec.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
        new FileSink(spec).check();
        return { spec, secret: null };
      }
      if (spec.kind === 'webhook') {
        const ref = webhookSecrets[spec.secret];
        if (!ref)
          throw new ConfigError(
            `${where}: secret ${JSON.stringify(spec.secret)} is not in the broker's webhook_secrets`,
            `audit sinks are signed (Standard Webhooks): add webhook_secrets: { ${spec.secret}: env:VARIABLE } (the variable holds whsec_…)`,
          );
        return {
          spec,
          secret: resolveSecret(ref, `webhook_secrets.${spec.secret}`, env, 'webhook'),
        };
      }
      return { spec, secret: resolveSecret(spec.token, `${where}.token`, env, 'password') };
    } catch (err) {
      if (err instanceof NotifySettingError)
        throw new ConfigError(`${err.where}: ${err.message}`, err.hint);
      throw err;
    }
  });
}

export interface SinkWorkerDeps {
  db: Db;
  clock: ServerClock;
  logger: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  metrics: Metrics;
  sinks: readonly OpenedSink[];
  publicUrl: string;
  tuning?: SinkTuning;
}

interface Runtime {
  sink: OpenedSink;
  file: FileSink | undefined;
  /** File sinks: where the file is (undefined until opened). HTTP sinks: the last seen cursor. */
  position: SinkPosition | undefined;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** Events per batch: halved after a 413, back up after each success. */
  batch: number;
  status: SinkStatus;
}

const FILE_BATCH = 1000;
/** Batches per job before letting the others have a turn. */
const BATCHES_PER_JOB = 10;
const STATS_EVERY_MS = 2_000;

export class SinkWorker {
  readonly #d: SinkWorkerDeps;
  readonly #t: Required<SinkTuning>;
  readonly #owner = `s_${randomBytes(9).toString('base64url')}`;
  readonly #jobs = new Jobs();
  readonly #pump: Pump;
  readonly #sinks: Runtime[];
  #lastStats = 0;
  #lastProblem = 0;
  #started = false;
  #closed = false;

  constructor(deps: SinkWorkerDeps) {
    this.#d = deps;
    const t = deps.tuning ?? {};
    this.#t = {
      pollIntervalMs: t.pollIntervalMs ?? 1_000,
      timeoutMs: t.timeoutMs ?? 10_000,
      backoffMs: t.backoffMs ?? 1_000,
      maxBackoffMs: t.maxBackoffMs ?? 300_000,
      closeTimeoutMs: t.closeTimeoutMs ?? 5_000,
      leaseMs: t.leaseMs ?? 60_000,
      fetch: t.fetch ?? globalThis.fetch,
      wallClock: t.wallClock ?? systemClock,
    };
    this.#sinks = deps.sinks.map((sink) => ({
      sink,
      file: sink.spec.kind === 'file' ? new FileSink(sink.spec) : undefined,
      position: undefined,
      attempts: 0,
      nextAttemptAt: 0,
      lastError: null,
      batch: sink.spec.kind === 'file' ? FILE_BATCH : sink.spec.batch,
      status: {
        name: sink.spec.name,
        kind: sink.spec.kind,
        delivered_seq: null,
        lag_events: 0,
        lag_seconds: 0,
        attempts: 0,
        last_error: null,
        max_lag_seconds: sink.spec.maxLagMs === null ? null : sink.spec.maxLagMs / 1000,
      },
    }));
    this.#pump = new Pump(() => this.#tick(), this.#t.pollIntervalMs);
  }

  start(): void {
    if (this.#sinks.length > 0) this.#pump.start();
  }

  /** Something may have been appended, or a checkpoint made: look now. Never throws. */
  kick(): void {
    if (!this.#closed && this.#sinks.length > 0) this.#pump.kick();
  }

  /** Each sink's state as of the last look (refreshed every couple of seconds). */
  status(): SinkStatus[] {
    return this.#sinks.map((r) => ({ ...r.status }));
  }

  async #tick(): Promise<void> {
    try {
      if (!this.#started) {
        // Cursors of new HTTP sinks, at the start each asks for (an existing one stays).
        const head = await auditHead(this.#d.db.kysely);
        for (const r of this.#sinks)
          if (r.sink.spec.kind !== 'file')
            await ensureSinkCursor(
              this.#d.db.kysely,
              r.sink.spec.name,
              r.sink.spec.start === 'end' ? head.seq : 0,
              this.#d.clock.now(),
            );
        this.#started = true;
      }
      for (const r of this.#sinks) {
        if (this.#closed || this.#jobs.isBusy(r.sink.spec.name)) continue;
        this.#jobs.run(r.sink.spec.name, () => this.#drain(r));
      }
      const now = Date.now();
      if (now - this.#lastStats >= STATS_EVERY_MS) {
        this.#lastStats = now;
        await this.#stats();
      }
    } catch (err) {
      this.#problem(err, 'audit sinks cannot read the log right now; retrying');
    }
  }

  async #drain(r: Runtime): Promise<void> {
    try {
      for (let i = 0; i < BATCHES_PER_JOB; i++) {
        if (this.#jobs.signal.aborted) return;
        const more = r.file ? await this.#fileBatch(r, r.file) : await this.#httpBatch(r);
        if (!more) return;
      }
      this.kick();
    } catch (err) {
      this.#problem(err, 'audit sink cannot read the log right now; retrying');
    }
  }

  async #fileBatch(r: Runtime, file: FileSink): Promise<boolean> {
    const d = this.#d;
    const now = d.clock.now();
    if (r.nextAttemptAt > now) {
      this.#pump.wakeIn(r.nextAttemptAt - now);
      return false;
    }
    try {
      let from = r.position;
      if (!from) {
        const found = await file.open();
        if (found) from = found;
        else if (r.sink.spec.start === 'end') {
          const head = await auditHead(d.db.kysely);
          from = { seq: head.seq, checkpoint_seq: head.seq };
        } else from = { seq: 0, checkpoint_seq: 0 };
        r.position = from;
        r.status.delivered_seq = from.seq;
      }
      const batch = await nextBatch(d.db, from, r.batch);
      if (batch.items.length === 0) return false;
      const records = await recordsOf(d.db, batch.items, {
        format: r.sink.spec.format,
        broker: d.publicUrl,
      });
      await file.write(records.map(jsonLine));
      this.#delivered(r, batch);
      return true;
    } catch (err) {
      // Read the position back from the file next time: a write cut short is repaired there.
      r.position = undefined;
      await file.close();
      const code = (err as NodeJS.ErrnoException).code;
      if (!code) throw err;
      const attempts = r.attempts + 1;
      this.#failed(r, d.clock.now(), code, attempts, retryDelay(attempts, this.#t), {
        file: file.spec.path,
      });
      return false;
    }
  }

  async #httpBatch(r: Runtime): Promise<boolean> {
    const d = this.#d;
    const spec = r.sink.spec as HttpSinkSpec;
    const now = d.clock.now();
    // Reads first: an idle sink, or one another replica delivers, costs no write.
    const [cursor] = await sinkCursors(d.db.kysely, [spec.name]);
    if (!cursor) return false;
    const heldElsewhere =
      cursor.claimed_by !== null &&
      cursor.claimed_by !== this.#owner &&
      (cursor.claimed_until ?? 0) >= now;
    if (heldElsewhere) return false;
    r.attempts = cursor.attempts;
    if (cursor.next_attempt_at > now) {
      this.#pump.wakeIn(cursor.next_attempt_at - now);
      return false;
    }
    const from = { seq: cursor.seq, checkpoint_seq: cursor.checkpoint_seq };
    const batch = await nextBatch(d.db, from, r.batch);
    if (batch.items.length === 0) return false;
    const row = await claimSink(d.db.kysely, spec.name, this.#owner, now, now + this.#t.leaseMs);
    // Taken by another replica, or moved since it was read: look again next time.
    if (!row || row.seq !== from.seq || row.checkpoint_seq !== from.checkpoint_seq) return false;
    const records = await recordsOf(d.db, batch.items, {
      format: spec.format,
      broker: d.publicUrl,
    });
    const outcome = await deliverHttp(
      {
        spec,
        secret: r.sink.secret!,
        broker: d.publicUrl,
        timeoutMs: this.#t.timeoutMs,
        signal: this.#jobs.signal,
        fetch: this.#t.fetch,
        wallClock: this.#t.wallClock,
      },
      from,
      batch,
      records,
    );
    // Cut short by shutdown: not an attempt; the next start (or replica) sends it.
    if (!outcome.ok && this.#jobs.signal.aborted) return false;
    const after = d.clock.now();
    if (outcome.ok) {
      const moved = await advanceSink(d.db.kysely, spec.name, this.#owner, from, batch.to, after);
      if (moved) this.#delivered(r, batch);
      return moved;
    }
    // Too large for the receiver: smaller batches (down to one event), at once.
    if (outcome.detail === 'http 413' && r.batch > 1) {
      r.batch = Math.max(1, Math.floor(r.batch / 2));
      return true;
    }
    const attempts = row.attempts + 1;
    const delay = retryDelay(attempts, this.#t, outcome.retryAfterMs);
    await sinkFailed(d.db.kysely, spec.name, this.#owner, {
      attempts,
      next_attempt_at: after + delay,
      last_error: outcome.detail,
    });
    this.#failed(r, after, outcome.detail, attempts, delay, { target: new URL(spec.url).origin });
    return false;
  }

  #delivered(r: Runtime, batch: SinkBatch): void {
    const events = batch.items.filter((i) => i.kind === 'event').length;
    if (r.attempts > 0 || r.status.attempts > 0)
      this.#d.logger.info(
        { sink: r.sink.spec.name, after_attempts: Math.max(r.attempts, r.status.attempts) },
        'audit sink delivering again',
      );
    r.position = batch.to;
    r.attempts = 0;
    r.nextAttemptAt = 0;
    r.lastError = null;
    if (r.sink.spec.kind !== 'file') r.batch = Math.min(r.sink.spec.batch, r.batch * 2);
    r.status.delivered_seq = batch.to.seq;
    r.status.attempts = 0;
    r.status.last_error = null;
    this.#d.metrics.auditSinkDelivered.inc({ sink: r.sink.spec.name }, events);
  }

  #failed(
    r: Runtime,
    now: number,
    error: string,
    attempts: number,
    delay: number,
    where: object,
  ): void {
    r.attempts = attempts;
    r.nextAttemptAt = now + delay;
    r.lastError = error;
    r.status.attempts = r.attempts;
    r.status.last_error = error;
    this.#d.metrics.auditSinkFailures.inc({ sink: r.sink.spec.name });
    this.#pump.wakeIn(delay);
    try {
      this.#d.logger.warn(
        {
          sink: r.sink.spec.name,
          ...where,
          attempt: r.attempts,
          error,
          retry_in_s: Math.round(delay / 1000),
          ...(/^http 40[13]$/.test(error)
            ? { hint: 'the receiver refuses the credentials: check the secret or token' }
            : {}),
        },
        'audit sink delivery failed; will retry',
      );
    } catch {}
  }

  /** Lag of every sink: events behind the head, and the age of the oldest one not delivered. */
  async #stats(): Promise<void> {
    const d = this.#d;
    const head = await auditHead(d.db.kysely);
    const http = this.#sinks.filter((r) => !r.file).map((r) => r.sink.spec.name);
    const rows = new Map((await sinkCursors(d.db.kysely, http)).map((c) => [c.name, c]));
    const now = d.clock.now();
    for (const r of this.#sinks) {
      const row = rows.get(r.sink.spec.name);
      const seq = row ? row.seq : r.position?.seq;
      if (row) {
        r.status.attempts = row.attempts;
        r.status.last_error = row.last_error;
      }
      if (seq === undefined) continue;
      r.status.delivered_seq = seq;
      r.status.lag_events = Math.max(0, head.seq - seq);
      const oldest = r.status.lag_events > 0 ? await eventTime(d.db.kysely, seq + 1) : undefined;
      r.status.lag_seconds =
        oldest === undefined ? 0 : Math.max(0, Math.round((now - oldest) / 1000));
      d.metrics.auditSinkLag.set(r.sink.spec.name, {
        events: r.status.lag_events,
        seconds: r.status.lag_seconds,
      });
    }
  }

  #problem(err: unknown, msg: string): void {
    const now = Date.now();
    if (now - this.#lastProblem < 60_000) return;
    this.#lastProblem = now;
    try {
      this.#d.logger.warn({ err }, msg);
    } catch {}
  }

  /** Stops: deliveries in flight finish (bounded), leases are handed back, files closed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pump.close();
    await this.#jobs.drain(this.#t.closeTimeoutMs);
    for (const r of this.#sinks) {
      if (r.file) await r.file.close();
      else await releaseSink(this.#d.db.kysely, r.sink.spec.name, this.#owner).catch(() => {});
    }
  }
}
