import { sql } from 'kysely';
import { type ChainPoint, type ChainProblem, ChainVerifier } from '../../api/audit-chain.js';
import type { ServerClock } from '../clock.js';
import type { Db } from '../store/database.js';
import { verifySqliteRange } from './verify-range.js';

/**
 * The audit log's verdict for a page that shows it, at a bounded cost per look. Walking a
 * million events takes seconds, so it is never done on one page view: each {@link status} call
 * walks at most `budget` events, with the same checks as `jitctl audit verify`
 * (src/server/audit/log.ts: ChainVerifier on the stored rows, the head read with the highest seq
 * in one snapshot, SQLite's raw ranges). Between looks it remembers where it stands:
 *
 * - a walk from the first event that reaches the head gives a verdict ("intact at T");
 * - events appended after that are verified from the last verified event on, so a verdict stays
 *   current at the cost of the new events only;
 * - after `rewalkMs` the walk starts again from the first event, so rows edited after they were
 *   verified are found too; the previous verdict is shown, marked with its time, until the new
 *   walk reaches the head.
 *
 * A break, once found, is reported until the broker restarts (it is evidence, not a state that
 * heals). Every replica keeps its own watch.
 */

export interface ChainStatus {
  state: 'intact' | 'checking' | 'broken';
  /** The head's seq in the snapshot of this look. */
  headSeq: number;
  /** Events verified by the current walk. */
  walked: number;
  /** The last complete verdict: events verified and when (ms). */
  verified: { events: number; at: number } | null;
  problem: ChainProblem | null;
}

export interface ChainWatchOptions {
  /** Events walked per look at most (default 20,000: about 150 ms, in slices of 2,000). */
  budget?: number;
  /** Walk from the first event again this long after the last complete walk (default 10 min). */
  rewalkMs?: number;
}

/** Events hashed between yields to the event loop (about 15 ms of work). */
const SLICE = 2_000;

const GENESIS: ChainPoint = { seq: 0, hash: '0'.repeat(64), count: 0 };

export class AuditChainWatch {
  #cursor: ChainPoint = GENESIS;
  /** When the current walk from the first event began. */
  #walkStartedAt: number | undefined;
  #verified: { events: number; at: number } | null = null;
  #problem: ChainProblem | null = null;
  #busy: Promise<ChainStatus> | undefined;
  readonly #budget: number;
  readonly #rewalkMs: number;

  constructor(
    private readonly db: Db,
    private readonly clock: ServerClock,
    opts: ChainWatchOptions = {},
  ) {
    this.#budget = opts.budget ?? 20_000;
    this.#rewalkMs = opts.rewalkMs ?? 10 * 60_000;
  }

  /** One bounded step of verification, then where things stand. Concurrent looks share a step. */
  status(): Promise<ChainStatus> {
    this.#busy ??= this.#step().finally(() => {
      this.#busy = undefined;
    });
    return this.#busy;
  }

  async #step(): Promise<ChainStatus> {
    const snapshot = await sql<{ seq: number; hash: string; max_seq: number | null }>`
      select seq, hash, (select max(seq) from audit_events) as max_seq from audit_head where id = 1
    `.execute(this.db.kysely);
    const head = snapshot.rows[0];
    if (!head) {
      this.#problem ??= { seq: 1, reason: 'the audit_head row is missing' };
      return this.#status(0);
    }
    const headSeq = Number(head.seq);
    if (this.#problem) return this.#status(headSeq);

    const now = this.clock.now();
    this.#walkStartedAt ??= now;
    if (this.#verified !== null && now - this.#walkStartedAt > this.#rewalkMs) {
      this.#cursor = GENESIS;
      this.#walkStartedAt = now;
    }

    const upTo = Math.min(headSeq, this.#cursor.seq + this.#budget);
    // In slices, yielding between them: hashing is synchronous, and other requests (a long poll's
    // answer, an approval) must not wait behind an auditor's page for more than a slice.
    while (this.#cursor.seq < upTo) {
      const sliceEnd = Math.min(upTo, this.#cursor.seq + SLICE);
      const walked = await this.#walk(this.#cursor, sliceEnd);
      const progressed = walked.end.seq > this.#cursor.seq;
      this.#cursor = walked.end;
      if (walked.problem) {
        this.#problem = walked.problem;
        return this.#status(headSeq);
      }
      if (!progressed || this.#cursor.seq < sliceEnd) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (this.#cursor.seq < upTo) {
      // Rows below the head's seq are missing (a deletion); the walk stopped at the gap.
      this.#problem = {
        seq: this.#cursor.seq + 1,
        reason: `event ${this.#cursor.seq + 1} is missing (the head says the log has ${headSeq} events)`,
      };
      return this.#status(headSeq);
    }
    if (this.#cursor.seq === headSeq) {
      if (head.hash !== this.#cursor.hash) {
        this.#problem = { seq: headSeq, reason: `the head's hash does not match event ${headSeq}` };
        return this.#status(headSeq);
      }
      const maxSeq = head.max_seq === null ? 0 : Number(head.max_seq);
      if (maxSeq > headSeq) {
        this.#problem = {
          seq: headSeq + 1,
          reason: `event ${headSeq + 1} is past the head (${headSeq}): added outside the broker`,
        };
        return this.#status(headSeq);
      }
      this.#verified = { events: this.#cursor.count, at: now };
    }
    return this.#status(headSeq);
  }

  /** Walks events after `from` up to `upTo` with the verifier of `jitctl audit verify`. */
  async #walk(
    from: ChainPoint,
    upTo: number,
  ): Promise<{ end: ChainPoint; problem?: ChainProblem }> {
    const verifier = new ChainVerifier(from);
    if (this.db.sqlite) {
      const range = verifySqliteRange(this.db.sqlite, from.seq, upTo);
      if (!range.first) return { end: from };
      // The range's first event is checked here against where the last look stopped.
      if (!verifier.pushStored(range.first))
        return { end: verifier.point, problem: verifier.problem! };
      const end = { ...range.end, count: verifier.count + range.end.count };
      return range.problem ? { end, problem: range.problem } : { end };
    }
    const rows = await this.db.kysely
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '>', from.seq)
      .where('seq', '<=', upTo)
      .orderBy('seq', 'asc')
      .execute();
    for (const row of rows) {
      if (!verifier.pushStored(row)) return { end: verifier.point, problem: verifier.problem! };
    }
    return { end: verifier.point };
  }

  #status(headSeq: number): ChainStatus {
    const state = this.#problem
      ? 'broken'
      : this.#cursor.seq === headSeq && this.#verified !== null
        ? 'intact'
        : 'checking';
    return {
      state,
      headSeq,
      walked: this.#cursor.count,
      verified: this.#verified,
      problem: this.#problem,
    };
  }
}
