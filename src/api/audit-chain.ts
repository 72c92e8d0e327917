import { createHash, hash as cryptoHash } from 'node:crypto';

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
  return storedEventHash(prevHash, {
    seq: content.seq,
    at: content.at,
    type: content.type,
    request_id: content.request_id,
    actor: canonicalJson(content.actor),
    data: canonicalJson(content.data),
  });
}

/** An event as the broker stores it: `actor` and `data` as their canonical JSON text. */
export interface StoredEvent {
  seq: number;
  at: string;
  type: string;
  request_id: string | null;
  /** canonicalJson(actor), or null / 'null' for none. */
  actor: string | null;
  /** canonicalJson(data) */
  data: string;
  prev_hash: string;
  hash: string;
}

/**
 * {@link eventHash} from already-canonical `actor` and `data` text, without parsing them: the body
 * is byte for byte canonicalJson of the whole event (its keys in code-unit order: actor, at, data,
 * request_id, seq, type). This is what lets `jitctl audit verify --db` walk a million rows in
 * seconds; eventHash itself is defined through it, so the two cannot drift apart.
 */
export function storedEventHash(
  prevHash: string,
  e: Pick<StoredEvent, 'seq' | 'at' | 'type' | 'request_id' | 'actor' | 'data'>,
): string {
  const body =
    `{"actor":${e.actor ?? 'null'},"at":${JSON.stringify(e.at)},"data":${e.data},` +
    `"request_id":${JSON.stringify(e.request_id)},"seq":${JSON.stringify(e.seq)},"type":${JSON.stringify(e.type)}}`;
  return sha256Hex(`${prevHash}\n${body}`);
}

// One-shot crypto.hash (Node >= 20.12) costs a fraction of createHash().update().digest() per call.
const sha256Hex: (text: string) => string =
  typeof cryptoHash === 'function'
    ? (text) => cryptoHash('sha256', text, 'hex')
    : (text) => createHash('sha256').update(text).digest('hex');

export interface ChainProblem {
  seq: number;
  reason: string;
}

/** Where a walk stands: the last event that chained, and how many have. */
export interface ChainPoint {
  seq: number;
  hash: string;
  count: number;
}

/**
 * Walks events in order and reports the first that does not chain. Incremental so a verifier can
 * stream millions of rows: feed pages to {@link ChainVerifier.push}. It starts at the genesis, or
 * after a given event (`from`): a walk split into ranges resumes each range where the previous one
 * ended, with the same verdicts and messages as one walk from the start.
 */
export class ChainVerifier {
  #prevHash: string;
  #prevSeq: number;
  #count: number;
  problem: ChainProblem | undefined;

  constructor(from: ChainPoint = { seq: 0, hash: GENESIS_HASH, count: 0 }) {
    this.#prevSeq = from.seq;
    this.#prevHash = from.hash;
    this.#count = from.count;
  }

  /** The last event that chained (the starting point until one has). */
  get point(): ChainPoint {
    return { seq: this.#prevSeq, hash: this.#prevHash, count: this.#count };
  }

  get count(): number {
    return this.#count;
  }
  get lastHash(): string {
    return this.#prevHash;
  }

  /** Returns false once a problem is found (the rest is not checked). */
  push(event: ChainedContent & { prev_hash: string; hash: string }): boolean {
    return this.#check(
      event.seq,
      event.prev_hash,
      () => eventHash(event.prev_hash, event) === event.hash,
      event.hash,
    );
  }

  /**
   * Like {@link push} for a stored row, hashing its canonical text as stored. Text that is not
   * canonical but means the same is accepted after parsing, so a database walk and an API walk
   * (which re-serializes) always agree.
   */
  pushStored(row: StoredEvent): boolean {
    return this.#check(
      row.seq,
      row.prev_hash,
      () => {
        if (storedEventHash(row.prev_hash, row) === row.hash) return true;
        try {
          const actor =
            row.actor === null ? null : (JSON.parse(row.actor) as ChainedContent['actor']);
          const data = JSON.parse(row.data) as Record<string, unknown>;
          return eventHash(row.prev_hash, { ...row, actor, data }) === row.hash;
        } catch {
          return false;
        }
      },
      row.hash,
    );
  }

  /**
   * A walk's fast path when the event's hashed text is already built (by SQLite, in
   * src/server/audit/verify-range.ts): true when the event follows, links and `body` hashes to
   * `hash`. Anything else (or a null body) returns undefined and changes nothing: the caller then
   * pushes the whole row with {@link pushStored}, which decides and names the problem.
   */
  pushBody(seq: number, prevHash: string, hash: string, body: string | null): true | undefined {
    if (
      this.problem ||
      body === null ||
      seq !== this.#prevSeq + 1 ||
      prevHash !== this.#prevHash ||
      sha256Hex(`${prevHash}\n${body}`) !== hash
    )
      return undefined;
    this.#prevHash = hash;
    this.#prevSeq = seq;
    this.#count++;
    return true;
  }

  #check(seq: number, prevHash: string, contentMatches: () => boolean, hash: string): boolean {
    if (this.problem) return false;
    if (seq !== this.#prevSeq + 1) {
      this.problem = {
        seq,
        reason: `expected event ${this.#prevSeq + 1} next but found ${seq} (events missing or reordered)`,
      };
      return false;
    }
    if (prevHash !== this.#prevHash) {
      this.problem = {
        seq,
        reason: "prev_hash does not match the previous event's hash",
      };
      return false;
    }
    if (!contentMatches()) {
      this.problem = {
        seq,
        reason: "hash does not match the event's content (changed after it was written)",
      };
      return false;
    }
    this.#prevHash = hash;
    this.#prevSeq = seq;
    this.#count++;
    return true;
  }
}
