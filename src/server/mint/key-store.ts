import type { JWK } from 'jose';
import type { Identity } from '../../api/schemas.js';
import type { NewAuditEvent } from '../audit/log.js';
import type { KeyRecord, SigningAlg } from './keys.js';

/**
 * Where the signing keys live and how they change: the database (key-store-db.ts, the default)
 * or a key file (key-store-file.ts). Both keep the same states (signing → published → retired)
 * and append the same audit events (`key.created`, `key.rotated`, `key.retired`) to the hash
 * chain in the database; neither ever puts private key material in an event, a log line or
 * command output.
 */
export interface KeyStore {
  /** How operators name it: `the database`, `key file /etc/jitctl/keys.json`. */
  readonly description: string;
  /** Every key the store knows, newest first, public parts only. */
  list(): Promise<KeyRecord[]>;
  /** The signing key with its private JWK, if there is one. */
  signing(): Promise<{ record: KeyRecord; privateJwk: JWK } | undefined>;
  /**
   * Makes sure a key signs: adopts keys from before rotation existed, and with `create` makes the
   * first key (`alg`) of an empty store. Returns the key it created, if any.
   */
  ensure(alg: SigningAlg, now: number, opts: { create: boolean }): Promise<KeyRecord | null>;
  /** A new signing key; the old one stays published. Audited in the same transaction. */
  rotate(alg: SigningAlg, now: number, by: KeyChange): Promise<RotateResult>;
  /** Drops a published key from the JWKS. The caller has decided it is safe (or forced). */
  retire(kid: string, now: number, by: KeyChange & { safeAt: number | null }): Promise<KeyRecord>;
}

export interface RotateResult {
  created: KeyRecord;
  previous: KeyRecord | null;
}

/** Who changes keys and why, for the audit event. */
export interface KeyChange {
  /** The operator (null: the broker itself, e.g. automatic retirement). */
  actor: Identity | null;
  reason?: string | undefined;
  forced?: boolean | undefined;
}

/**
 * Finds a key by kid or by a unique prefix of at least 6 characters (kids are 43-character
 * thumbprints; operators copy the start of one from `keys list`).
 */
export function findKey(records: KeyRecord[], kid: string): KeyRecord | undefined {
  const exact = records.find((r) => r.kid === kid);
  if (exact || kid.length < 6) return exact;
  const matches = records.filter((r) => r.kid.startsWith(kid));
  return matches.length === 1 ? matches[0] : undefined;
}

// The audit events of key changes: kid, algorithm and times, never key material.

export function created(kid: string, alg: SigningAlg, actor: KeyChange['actor']): NewAuditEvent {
  return { type: 'key.created', request_id: null, actor, data: { kid, alg } };
}

export function rotated(
  kid: string,
  previous: string | null,
  alg: SigningAlg,
  by: KeyChange,
): NewAuditEvent {
  return {
    type: 'key.rotated',
    request_id: null,
    actor: by.actor,
    data: { kid, previous, alg, ...(by.reason ? { reason: by.reason } : {}) },
  };
}

export function retiredEvent(
  r: KeyRecord,
  by: KeyChange & { safeAt: number | null },
): NewAuditEvent {
  return {
    type: 'key.retired',
    request_id: null,
    actor: by.actor,
    data: {
      kid: r.kid,
      alg: r.alg,
      forced: by.forced === true,
      safe_at: by.safeAt === null ? null : new Date(by.safeAt).toISOString(),
      ...(by.actor === null ? { automatic: true } : {}),
      ...(by.reason ? { reason: by.reason } : {}),
    },
  };
}
