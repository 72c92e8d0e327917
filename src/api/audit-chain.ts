import { createHash } from 'node:crypto';

/**
 * The audit log's hash chain. Each event's `hash` is SHA-256 over the previous event's hash and the
 * event's canonical content, so changing, removing or reordering any event breaks every later
 * hash. Shared by the broker (append), `jitctl audit verify --db` (walk the table) and the API
 * verifier (walk `GET /v1/audit`).
 */

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedContent {
  seq: number;
  at: string;
  type: string;
  request_id: string | null;
  actor: { iss: string; sub: string; name: string | null } | null;
  data: Record<string, unknown>;
}

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, no undefined members
 * (RFC 8785 for the values the audit log holds: strings, integers, booleans, null, arrays, objects).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError('non-finite number');
    if (value === undefined) return 'null';
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export function eventHash(prevHash: string, content: ChainedContent): string {
  const body = canonicalJson({
    seq: content.seq,
    at: content.at,
    type: content.type,
    request_id: content.request_id,
    actor: content.actor,
    data: content.data,
  });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

export interface ChainProblem {
  seq: number;
  reason: string;
}

/**
 * Walks events in order and reports the first that does not chain. Incremental so a verifier can
 * stream millions of rows: feed pages to {@link ChainVerifier.push}.
 */
export class ChainVerifier {
  #prevHash = GENESIS_HASH;
  #prevSeq = 0;
  #count = 0;
  problem: ChainProblem | undefined;

  get count(): number {
    return this.#count;
  }
  get lastHash(): string {
    return this.#prevHash;
  }

  /** Returns false once a problem is found (the rest is not checked). */
  push(event: ChainedContent & { prev_hash: string; hash: string }): boolean {
    if (this.problem) return false;
    if (event.seq !== this.#prevSeq + 1) {
      this.problem = {
        seq: event.seq,
        reason: `expected event ${this.#prevSeq + 1} next but found ${event.seq} (events missing or reordered)`,
      };
      return false;
    }
    if (event.prev_hash !== this.#prevHash) {
      this.problem = {
        seq: event.seq,
        reason: "prev_hash does not match the previous event's hash",
      };
      return false;
    }
    if (eventHash(event.prev_hash, event) !== event.hash) {
      this.problem = {
        seq: event.seq,
        reason: "hash does not match the event's content (changed after it was written)",
      };
      return false;
    }
    this.#prevHash = event.hash;
    this.#prevSeq = event.seq;
    this.#count++;
    return true;
  }
}
