import {
  type CompactVerifyResult,
  calculateJwkThumbprint,
  compactVerify,
  decodeJwt,
  decodeProtectedHeader,
  importJWK,
  type JWK,
} from 'jose';
import { canonicalJson } from './audit-chain.js';

/**
 * Audit checkpoints: the broker's signature over the chain's head (`seq`, `hash`, the time, and
 * the key's id), as a compact JWS, kept outside the database (sinks, files, a ticket) the way
 * CloudTrail keeps digest files. A database rewritten from an earlier point can have a chain
 * that verifies on its own; it cannot match a checkpoint signed before the rewrite.
 *
 * The protected header carries `typ` (so a checkpoint is never taken for a credential and back,
 * RFC 8725 §3.11), `kid` (the key's RFC 7638 thumbprint, as for credentials) and `jwk` (the
 * public key itself), so a checkpoint verifies on its own after its key has left the JWKS. The
 * embedded key proves nothing by itself: a verifier accepts a checkpoint only when the key's
 * thumbprint is one it trusts (docs/operations.md "Checkpoints" has the trust model).
 */

export const CHECKPOINT_TYP = 'jitctl-audit-checkpoint+jws';
export const CHECKPOINT_ALGS = ['ES256', 'EdDSA', 'RS256'];

/** What a checkpoint signs. */
export interface CheckpointClaims {
  /** The broker's public URL. */
  iss: string;
  /** The last event's sequence number, and its hash. */
  seq: number;
  hash: string;
  /** When it was signed (RFC 3339, UTC). */
  signed_at: string;
}

/** A checkpoint as the API and the sinks hand it out: the JWS, and what it says, for reading. */
export interface CheckpointRecord {
  jws: string;
  seq: number;
  hash: string;
  signed_at: string;
  kid: string;
}

/** The payload's bytes: canonical JSON, so the same head always signs the same text. */
export const checkpointPayload = (c: CheckpointClaims): Uint8Array =>
  new TextEncoder().encode(canonicalJson(c));

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const HASH = /^[0-9a-f]{64}$/;

/** A checkpoint whose signature verified with the key it names. */
export interface SignedCheckpoint {
  claims: CheckpointClaims;
  kid: string;
  jws: string;
}

/** Public keys imported once per kid and algorithm: an archive holds thousands per key. */
export type KeyCache = Map<string, Promise<CryptoKey | Uint8Array>>;

const isJwk = (v: unknown): v is JWK =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as JWK).kty === 'string';

/**
 * Checks a checkpoint's form and signature against the public key in its own header, and that
 * the `kid` is that key's thumbprint. Throws CheckpointError saying what is wrong. Says nothing
 * about whether the key is the broker's: that is the caller's trust decision.
 */
export async function openCheckpoint(
  jws: string,
  keys: KeyCache = new Map(),
): Promise<SignedCheckpoint> {
  const compact = jws.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(compact) || compact.length > 16_384)
    throw new CheckpointError('is not a compact JWS');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(compact);
  } catch {
    throw new CheckpointError('is not a compact JWS');
  }
  if (header.typ !== CHECKPOINT_TYP)
    throw new CheckpointError(`is not an audit checkpoint (typ ${JSON.stringify(header.typ)})`);
  const { kid, jwk, alg } = header;
  if (typeof alg !== 'string' || !CHECKPOINT_ALGS.includes(alg))
    throw new CheckpointError(
      `is signed with ${JSON.stringify(alg)}, not ${CHECKPOINT_ALGS.join(', ')}`,
    );
  if (!isJwk(jwk)) throw new CheckpointError('carries no public key (jwk)');
  if ('d' in jwk) throw new CheckpointError('carries a private key');
  let thumbprint: string;
  try {
    thumbprint = await calculateJwkThumbprint(jwk);
  } catch {
    throw new CheckpointError('carries a key that cannot be read');
  }
  if (typeof kid !== 'string' || kid !== thumbprint)
    throw new CheckpointError("names a kid that is not its key's thumbprint");
  let key = keys.get(`${alg}:${kid}`);
  if (!key) {
    key = importJWK(jwk, alg);
    keys.set(`${alg}:${kid}`, key);
  }
  let verified: CompactVerifyResult;
  try {
    verified = await compactVerify(compact, await key, { algorithms: [alg] });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
      throw new CheckpointError('has a signature that does not verify (changed or forged)');
    throw new CheckpointError(`cannot be verified: ${(err as Error).message}`);
  }
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder().decode(verified.payload));
  } catch {
    throw new CheckpointError('has a payload that is not JSON');
  }
  const c = claims as Partial<CheckpointClaims> | null;
  if (
    !c ||
    typeof c !== 'object' ||
    typeof c.iss !== 'string' ||
    !Number.isSafeInteger(c.seq) ||
    (c.seq as number) < 1 ||
    typeof c.hash !== 'string' ||
    !HASH.test(c.hash) ||
    typeof c.signed_at !== 'string' ||
    Number.isNaN(Date.parse(c.signed_at))
  )
    throw new CheckpointError('does not hold iss, seq, hash and signed_at');
  return {
    claims: { iss: c.iss, seq: c.seq!, hash: c.hash, signed_at: c.signed_at },
    kid,
    jws: compact,
  };
}

/**
 * What a checkpoint says, unverified (which events and keys a verifier must look at before the
 * signatures are checked); undefined for anything that is not one.
 */
export function peekCheckpoint(jws: string): { seq: number; kid: string } | undefined {
  try {
    const kid = decodeProtectedHeader(jws.trim()).kid;
    const seq = decodeJwt(jws.trim()).seq;
    return typeof kid === 'string' && Number.isSafeInteger(seq)
      ? { seq: seq as number, kid }
      : undefined;
  } catch {
    return undefined;
  }
}

/** A checkpoint found somewhere (a file and line), still to be judged. */
export interface CheckpointFound {
  /** Where it was found, for messages: `archive/audit.jsonl:57`. */
  source: string;
  jws: string;
}

export type CheckpointVerdict =
  | {
      status: 'ok';
      source: string;
      seq: number;
      hash: string;
      signed_at: string;
      kid: string;
      /** How its key came to be trusted. */
      trust: 'keys' | 'log';
    }
  | {
      /** Not a genuine checkpoint of this broker: malformed, bad signature, unknown key. */
      status: 'refused';
      source: string;
      reason: string;
      seq?: number;
      kid?: string;
      signed_at?: string;
    }
  | {
      /** Genuine, and the log no longer extends it: rewritten or cut off. */
      status: 'broken';
      source: string;
      seq: number;
      hash: string;
      signed_at: string;
      kid: string;
      reason: string;
    };

export const KEY_EVENT_TYPES: readonly string[] = ['key.created', 'key.rotated', 'key.retired'];

/**
 * The kids a key event names as the broker's: `key.created` and `key.retired` one (data.kid),
 * `key.rotated` the new one and the one it replaced (data.previous), which is how a broker's
 * first key, created without an event, is on record.
 */
export function keysNamedBy(type: string, data: Record<string, unknown>): string[] {
  if (!KEY_EVENT_TYPES.includes(type)) return [];
  return [data.kid, type === 'key.rotated' ? data.previous : undefined].filter(
    (k): k is string => typeof k === 'string' && k !== '',
  );
}

/** What the verifier learnt from walking the log. */
export interface LogFacts {
  /** The last event that chained (all of them when the chain is intact). */
  lastGoodSeq: number;
  /** Where the chain broke, if it did. */
  brokenAt: number | undefined;
  /** The hash of event `seq` as the log has it (undefined: beyond the log's end). */
  hashAt(seq: number): string | undefined;
  /** kids of the signing keys the log records (`key.created`, `key.rotated`), with where. */
  keyEvents: readonly { seq: number; kid: string }[];
}

/**
 * Judges every checkpoint. Trust starts from `anchors` (thumbprints from a saved JWKS or the
 * broker's live one) and grows only through the log itself: once a trusted checkpoint at seq S
 * matches the log, events up to S are the ones the broker wrote, so the keys they record
 * (`key.created`, `key.rotated`) are the broker's, and checkpoints those keys signed are
 * trusted too. That is how a checkpoint signed by a key retired long ago still verifies.
 */
export function judgeCheckpoints(
  opened: readonly (
    | { found: CheckpointFound; checkpoint: SignedCheckpoint }
    | { found: CheckpointFound; error: string }
  )[],
  anchors: ReadonlySet<string>,
  log: LogFacts,
): CheckpointVerdict[] {
  const trusted = new Map<string, 'keys' | 'log'>([...anchors].map((k) => [k, 'keys']));
  let vouchedUpTo = 0;
  const matches = (c: SignedCheckpoint) =>
    c.claims.seq <= log.lastGoodSeq && log.hashAt(c.claims.seq) === c.claims.hash;
  for (;;) {
    let grew = false;
    for (const o of opened) {
      if (!('checkpoint' in o)) continue;
      const c = o.checkpoint;
      if (trusted.has(c.kid) && matches(c) && c.claims.seq > vouchedUpTo) {
        vouchedUpTo = c.claims.seq;
        grew = true;
      }
    }
    if (!grew) break;
    for (const k of log.keyEvents)
      if (k.seq <= vouchedUpTo && !trusted.has(k.kid)) trusted.set(k.kid, 'log');
  }

  return opened.map((o): CheckpointVerdict => {
    if ('error' in o) return { status: 'refused', source: o.found.source, reason: o.error };
    const { claims, kid } = o.checkpoint;
    const said = { seq: claims.seq, hash: claims.hash, signed_at: claims.signed_at, kid };
    const trust = trusted.get(kid);
    if (!trust) {
      const recorded = log.keyEvents.find((k) => k.kid === kid);
      return {
        status: 'refused',
        source: o.found.source,
        ...said,
        reason: recorded
          ? `is signed by key ${kid}, which the log records (event ${recorded.seq}) but no trusted checkpoint vouches for: give the JWKS that held it (--jwks), or the log was rewritten before that event`
          : `is signed by key ${kid}, which is not one of the broker's keys (not among the trusted keys, nor recorded in the part of the log a trusted checkpoint vouches for)`,
      };
    }
    if (matches(o.checkpoint)) return { status: 'ok', source: o.found.source, ...said, trust };
    let reason: string;
    if (log.brokenAt !== undefined && claims.seq >= log.brokenAt)
      reason = `cannot be checked: the chain itself breaks at event ${log.brokenAt}`;
    else if (claims.seq > log.lastGoodSeq)
      reason = `the log ends at event ${log.lastGoodSeq}, before the checkpoint's event ${claims.seq}: events were cut off`;
    else
      reason = `event ${claims.seq}'s hash is ${log.hashAt(claims.seq)}, the checkpoint says ${claims.hash}: the log was rewritten`;
    return { status: 'broken', source: o.found.source, ...said, reason };
  });
}
