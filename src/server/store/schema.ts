import type { Generated, Selectable } from 'kysely';
import type { Decision, RequestState } from '../../api/schemas.js';

/**
 * The broker's tables as kysely sees them. One schema for SQLite and PostgreSQL: times are integer
 * milliseconds since the epoch (`bigint` on PostgreSQL, read back as numbers), JSON is stored as
 * text so both dialects compare and hash the same bytes.
 */
export interface Database {
  requests: RequestsTable;
  reviews: ReviewsTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  signing_keys: SigningKeysTable;
  ui_sessions: UiSessionsTable;
  ui_keys: UiKeysTable;
}

export interface RequestsTable {
  /** Insertion order: the keyset of `GET /v1/requests` pages (newest first). */
  seq: Generated<number>;
  id: string;
  role: string;
  state: RequestState;
  requester_iss: string;
  requester_sub: string;
  requester_name: string | null;
  duration_ms: number;
  reason: string | null;
  ticket: string | null;
  created_at: number;
  /** Pending: when the request lapses. Approved (and revoked): when the credential window ends. */
  expires_at: number;
  approved_at: number | null;
  /** When the request reached a terminal state. */
  ended_at: number | null;
  approvals_required: number;
  denials_required: number;
  /** JSON array of the policy entries that could review at creation (`group:leads`). */
  approvers: string;
  fingerprint: string;
  /** Part of the ETag: a long poll wakes when a review lands even if the state stays. */
  review_count: number;
  idempotency_key: string | null;
  /** SHA-256 of the create body, to refuse one key reused for a different request. */
  idempotency_hash: string | null;
}

export interface ReviewsTable {
  request_id: string;
  reviewer_iss: string;
  reviewer_sub: string;
  reviewer_name: string | null;
  decision: Decision;
  comment: string | null;
  at: number;
}

export interface AuditEventsTable {
  seq: number;
  /** RFC 3339 exactly as hashed. */
  at: string;
  type: string;
  request_id: string | null;
  /** JSON `{iss, sub, name}` or null for the broker itself (expiry). */
  actor: string | null;
  /** Canonical JSON of the event's data. */
  data: string;
  prev_hash: string;
  hash: string;
}

/**
 * One row (id 1): the last appended event. Appends lock it (`FOR UPDATE` on PostgreSQL) so replicas
 * extend one chain, and `audit verify` compares it with the last event to notice a cut-off tail.
 */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface SigningKeysTable {
  kid: string;
  /**
   * `signing` for the one key that signs now (unique, so there is never a second). Before
   * migration 0200 it was `current:<alg>`; the first start after it adopts those rows
   * (key-store-db.ts).
   */
  slot: string | null;
  alg: string;
  /** The private JWK while the key signs; '' once it stopped (it is never needed again). */
  private_jwk: string;
  public_jwk: string;
  created_at: number;
  /** `signing`, `published` (in the JWKS, no longer signing) or `retired` (gone from the JWKS). */
  state: Generated<string>;
  /** When it stopped signing. */
  rotated_at: number | null;
  retired_at: number | null;
}

export type RequestRow = Selectable<RequestsTable>;
export type ReviewRow = Selectable<ReviewsTable>;
export type AuditRow = Selectable<AuditEventsTable>;

/** A browser session of the review pages (src/server/pages/sessions.ts). */
export interface UiSessionsTable {
  /** SHA-256 (base64url) of the random value in the session cookie. */
  id_hash: string;
  iss: string;
  sub: string;
  /** The Caller built from the verified ID token at sign-in (JSON). */
  caller: string;
  /** A decision waiting for a fresh sign-in (JSON), shown again to confirm after step-up. */
  intent: string | null;
  created_at: number;
  expires_at: number;
}

/** Keys of the review pages, shared by every replica (src/server/pages/keys.ts). */
export interface UiKeysTable {
  id: string;
  /** base64url key material. */
  secret: string;
  created_at: number;
}

export type UiSessionRow = Selectable<UiSessionsTable>;
