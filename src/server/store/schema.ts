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
  people: PeopleTable;
  people_groups: PeopleGroupsTable;
  notification_outbox: NotificationOutboxTable;
  notification_cursor: NotificationCursorTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_sink_cursors: AuditSinkCursorsTable;
  // revocation (migration 0600): credentials minted, uses of a grant reported by the CLI
  credentials: CredentialsTable;
  command_uses: CommandUsesTable;
  access_reviews: AccessReviewsTable;
  access_review_items: AccessReviewItemsTable;
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
  // ---- the lifecycle's additions (migration 0400) ----
  /** A scheduled start (`--at`, `--in`); the window opens then, or at approval if later. */
  starts_at: Generated<number | null>;
  /** Part of the ETag: bumped by changes that keep state and review count (extensions, break-glass reviews). */
  revision: Generated<number>;
  /** The approval rule that approved or denied the request at filing. */
  decided_by_rule: Generated<string | null>;
  /** JSON `[{"from": "group:leads", "count": 1}, …]`: multi-party approvals, snapshot at filing. */
  approval_groups: Generated<string | null>;
  /** The approved extensions so far, in total. */
  extended_ms: Generated<number>;
  /** How many extensions were asked for; the last one's fields follow (its reviews have this round). */
  extension_round: Generated<number>;
  extension_state: Generated<ExtensionState | null>;
  extension_ms: Generated<number | null>;
  extension_reason: Generated<string | null>;
  extension_requested_at: Generated<number | null>;
  extension_approvals_required: Generated<number | null>;
  extension_approval_groups: Generated<string | null>;
  extension_fingerprint: Generated<string | null>;
  /** 1 for a break-glass request (approved at once, reviewed afterwards). */
  break_glass: Generated<number>;
  break_glass_review_by: Generated<number | null>;
  break_glass_verdict: Generated<BreakGlassVerdict | null>;
  /** JSON identity of who acknowledged or flagged it. */
  break_glass_reviewer: Generated<string | null>;
  break_glass_comment: Generated<string | null>;
  break_glass_reviewed_at: Generated<number | null>;
  /** When the overdue event was written (once). */
  break_glass_overdue_at: Generated<number | null>;
}

export type ExtensionState = 'pending' | 'approved' | 'denied' | 'cancelled' | 'expired';
export type BreakGlassVerdict = 'acknowledged' | 'flagged';

export interface ReviewsTable {
  request_id: string;
  reviewer_iss: string;
  reviewer_sub: string;
  reviewer_name: string | null;
  decision: Decision;
  comment: string | null;
  at: number;
  /** 0: a review of the request; n: of its n-th extension. */
  round: Generated<number>;
  /** JSON array of the multi-party approval groups the reviewer was in when reviewing. */
  counts_for: Generated<string | null>;
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
/** Everyone who has signed in (src/server/people/directory.ts), as their last sign-in showed them. */
export interface PeopleTable {
  iss: string;
  sub: string;
  /** `person`, or `workload` for pipelines signed in by token exchange. */
  kind: 'person' | 'workload';
  name: string | null;
  email: string | null;
  /** Lower-cased email, for lookups by address. */
  email_lower: string | null;
  /** 1 unless the identity provider said `email_verified: false`. */
  email_verified: number;
  /** JSON array of the groups of the last sign-in. */
  groups: string;
  first_seen_at: number;
  last_seen_at: number;
}

export interface PeopleGroupsTable {
  iss: string;
  sub: string;
  group_name: string;
}

/** One notification to one webhook or mailbox (src/server/notify/outbox.ts). */
export interface NotificationOutboxTable {
  /** The Standard Webhooks `webhook-id` (`msg_…`), the same on every attempt. */
  id: string;
  /** What makes it unique (audit seq or scheduled reminder, and target): inserted once. */
  dedupe_key: string;
  event_type: string;
  request_id: string | null;
  /** The audit event's seq (0 for scheduled ones): keeps one target's notifications in order. */
  event_seq: number;
  channel: 'webhook' | 'email';
  /** Webhooks: `wh_<hash of the URL>` (the URL is resolved from the settings); email: the address. */
  target: string;
  /** 1 for high priority (delivered first). */
  priority: number;
  /** The exact body (webhooks) or the rendered message as JSON (email). */
  body: string;
  /** JSON `{state, expires_at}` the request must still have when a scheduled notification is due. */
  guard: string | null;
  state: 'pending' | 'sent' | 'failed' | 'dropped';
  attempts: number;
  /** When it first became due (created, or the scheduled time): the queue's age counts from it. */
  due_at: number;
  next_attempt_at: number;
  /** After this, a failing notification is given up. */
  deliver_until: number;
  /** The replica delivering it now, until `claimed_until` (a lease that outlives a crash). */
  claimed_by: string | null;
  claimed_until: number | null;
  /** The last failure: a status code or an error code, never a URL or a secret. */
  last_error: string | null;
  created_at: number;
  done_at: number | null;
}

/** One row (id 1): the audit sequence number up to which events have been routed. */
export interface NotificationCursorTable {
  id: number;
  seq: number;
}

export type PersonRow = Selectable<PeopleTable>;
export type OutboxRow = Selectable<NotificationOutboxTable>;

/** A signed checkpoint of the audit chain's head (src/server/audit/checkpoints.ts), one per head. */
export interface AuditCheckpointsTable {
  seq: number;
  hash: string;
  signed_at: number;
  kid: string;
  /** The compact JWS, exactly as handed out. */
  jws: string;
}

/**
 * Where an HTTP audit sink has got to (src/server/audit/sinks/): every event up to `seq` and
 * every checkpoint up to `checkpoint_seq` delivered. One replica delivers a sink at a time,
 * under a lease (`claimed_by` until `claimed_until`), so events go out in order.
 */
export interface AuditSinkCursorsTable {
  name: string;
  seq: number;
  checkpoint_seq: number;
  delivered_at: number | null;
  /** Failed attempts in a row (0 once a delivery succeeds). */
  attempts: number;
  next_attempt_at: number;
  /** The last failure: a status code or an error code, never a URL or a token. */
  last_error: string | null;
  claimed_by: string | null;
  claimed_until: number | null;
  created_at: number;
}

export type AuditSinkCursorRow = Selectable<AuditSinkCursorsTable>;

/**
 * One row per credential minted (src/server/revocation/): which request it belongs to and until
 * when it is valid, so that a revocation can name every credential it stops (`jti`). Never the
 * token itself.
 */
export interface CredentialsTable {
  jti: string;
  request_id: string;
  role: string;
  kid: string;
  audience: string;
  /** ms since the epoch */
  issued_at: number;
  expires_at: number;
}

/** A use of a grant reported by `jitctl exec`/`shell` (start or end), once per `use_id` and event. */
export interface CommandUsesTable {
  use_id: string;
  /** `start` or `end` */
  event: string;
  request_id: string;
  at: number;
}

export type CredentialRow = Selectable<CredentialsTable>;

/** An access review campaign (src/server/governance/access-reviews/). */
export interface AccessReviewsTable {
  /** `ar_` + 12 base58 characters. */
  id: string;
  title: string | null;
  state: 'open' | 'closed';
  /** JSON array of role names. */
  roles: string;
  /** JSON array of policy principals (`group:security`) who may decide. */
  reviewers: string;
  /** JSON identity `{iss, sub, name}`. */
  created_by: string;
  created_at: number;
  due_at: number;
  /** When the reminder is due (before `due_at`); `reminded_at` once it was written. */
  remind_at: number;
  reminded_at: number | null;
  /** When the overdue notice was written (once). */
  overdue_at: number | null;
  closed_at: number | null;
  closed_by: string | null;
}

/** One thing a campaign asks about: a policy entry, a pipeline, or a person who used a role. */
export interface AccessReviewItemsTable {
  campaign_id: string;
  /** 1, 2, … within the campaign. */
  n: number;
  role: string;
  kind: 'entry' | 'pipeline' | 'person';
  /** As shown: `group:contractors`, `pipeline:github-deploy`, a person's name. */
  subject: string;
  /** What a removal matches: the entry's principal key, `pipeline:<name>`, or null for a person. */
  subject_key: string | null;
  /** Person items: who. */
  subject_iss: string | null;
  subject_sub: string | null;
  subject_name: string | null;
  /** JSON array: the entries a person is eligible through, or the groups a pipeline gets. */
  via: string;
  known: number | null;
  last_used_at: number | null;
  uses: number;
  decision: 'keep' | 'remove' | null;
  comment: string | null;
  /** JSON identity. */
  decided_by: string | null;
  decided_at: number | null;
  /**
   * A removal's basis: the fingerprint of what the policy said when it was decided (the role's
   * requesters, and for a pipeline its trusted issuer entry). It is enforced while they match.
   */
  basis: string | null;
}

export type AccessReviewRow = Selectable<AccessReviewsTable>;
export type AccessReviewItemRow = Selectable<AccessReviewItemsTable>;
