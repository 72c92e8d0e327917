import { CompactSign, type JWK } from 'jose';
import {
  CHECKPOINT_TYP,
  type CheckpointRecord,
  checkpointPayload,
} from '../../api/audit-checkpoint.js';
import type { ServerClock } from '../clock.js';
import { type KeyRing, publicPart } from '../mint/keys.js';
import {
  auditHead,
  type CheckpointRow,
  latestCheckpoint,
  storeCheckpoint,
} from '../store/audit-stream.js';
import type { Db } from '../store/database.js';

/**
 * Signed checkpoints of the audit chain's head (src/api/audit-checkpoint.ts): made on a schedule
 * and on demand (`GET /v1/audit/checkpoint`), at most one per head, stored in
 * `audit_checkpoints` so the sinks deliver each one (after the event it names) whichever replica
 * made it. The key is the one signing credentials at that moment; its public JWK rides in the
 * header so the checkpoint still verifies after the key is retired.
 */

export interface CheckpointerDeps {
  db: Db;
  keys: KeyRing;
  clock: ServerClock;
  publicUrl: string;
  /** How often a checkpoint is made when the log has grown (null: only on demand). */
  intervalMs: number | null;
  /** A checkpoint was stored (the sinks are kicked). */
  onCreated?: () => void;
  logger: { warn(obj: object, msg: string): void };
}

export const toRecord = (r: CheckpointRow): CheckpointRecord => ({
  jws: r.jws,
  seq: Number(r.seq),
  hash: r.hash,
  signed_at: new Date(Number(r.signed_at)).toISOString(),
  kid: r.kid,
});

export class Checkpointer {
  readonly #d: CheckpointerDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #lastProblem = 0;

  constructor(deps: CheckpointerDeps) {
    this.#d = deps;
  }

  /**
   * The checkpoint of the current head: the stored one when the head has not moved since, else
   * one signed now. Null while the log is empty (there is nothing to vouch for).
   */
  async current(): Promise<CheckpointRecord | null> {
    const d = this.#d;
    const head = await auditHead(d.db.kysely);
    if (head.seq === 0) return null;
    const latest = await latestCheckpoint(d.db.kysely);
    if (latest && Number(latest.seq) === head.seq) return toRecord(latest);
    return toRecord(await this.#sign(head));
  }

  async #sign(head: { seq: number; hash: string }): Promise<CheckpointRow> {
    const d = this.#d;
    const key = d.keys.current;
    const jwk = d.keys.jwks.find((j) => j.kid === key.kid);
    if (!jwk) throw new Error(`the signing key ${key.kid} is not in the JWKS`);
    const signedAt = d.clock.now();
    const jws = await new CompactSign(
      checkpointPayload({
        iss: d.publicUrl,
        seq: head.seq,
        hash: head.hash,
        signed_at: new Date(signedAt).toISOString(),
      }),
    )
      .setProtectedHeader({
        alg: key.alg,
        typ: CHECKPOINT_TYP,
        kid: key.kid,
        jwk: publicPart(jwk) as JWK,
      })
      .sign(key.privateKey);
    const stored = await storeCheckpoint(d.db.kysely, {
      seq: head.seq,
      hash: head.hash,
      signed_at: signedAt,
      kid: key.kid,
      jws,
    });
    if (stored.jws === jws) d.onCreated?.();
    return stored;
  }

  /** Makes a checkpoint when the last one is older than the interval and the log has grown. */
  async tick(): Promise<void> {
    const d = this.#d;
    if (d.intervalMs === null) return;
    const head = await auditHead(d.db.kysely);
    if (head.seq === 0) return;
    const latest = await latestCheckpoint(d.db.kysely);
    if (latest && Number(latest.seq) >= head.seq) return;
    // Every replica runs this; the newest checkpoint in the database is what counts.
    if (latest && d.clock.now() - Number(latest.signed_at) < d.intervalMs) return;
    await this.#sign(head);
  }

  start(): void {
    const every = this.#d.intervalMs;
    if (every === null) return;
    // Often enough to keep the interval (replicas share the schedule through the table).
    const look = Math.max(50, Math.min(every / 4, 60_000));
    const run = () => {
      this.#running ??= this.tick()
        .catch((err: unknown) => {
          const now = Date.now();
          if (now - this.#lastProblem < 60_000) return;
          this.#lastProblem = now;
          try {
            this.#d.logger.warn({ err }, 'audit checkpoint could not be made; retrying');
          } catch {}
        })
        .finally(() => {
          this.#running = undefined;
        });
    };
    run();
    this.#timer = setInterval(run, look);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}
