import { type Static, type TSchema, Type } from '@sinclair/typebox';

/**
 * The wire contract of API v1 (docs/api.md). JSON Schemas that the
 * broker validates bodies and responses with, and the TypeScript types both halves use. Field
 * names are snake_case on the wire. Times are RFC 3339 UTC strings; durations are strings like
 * `15m` (src/api/duration.ts).
 */

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const REQUEST_STATES = [
  'pending',
  /** Approved, with a window that opens later (`--at`, `--in`). */
  'scheduled',
  'approved',
  'denied',
  'cancelled',
  'expired',
  'revoked',
] as const;
export const TERMINAL_STATES = ['denied', 'cancelled', 'expired', 'revoked'] as const;
export const RequestState = Type.Union(REQUEST_STATES.map((s) => Type.Literal(s)));
export type RequestState = Static<typeof RequestState>;

export const Decision = Type.Union([Type.Literal('approve'), Type.Literal('deny')]);
export type Decision = Static<typeof Decision>;

/** A person or workload: identity is issuer + subject, never email alone. */
export const Identity = Type.Object({
  iss: Type.String(),
  sub: Type.String(),
  name: Nullable(Type.String()),
});
export type Identity = Static<typeof Identity>;

export const Review = Type.Object({
  reviewer: Identity,
  decision: Decision,
  comment: Nullable(Type.String()),
  at: Type.String(),
});
export type Review = Static<typeof Review>;

// ---- the lifecycle's additions: extensions, scheduled start, break-glass, approval rules ----

/** What a request waits for, if anything (`awaiting`); pages and the CLI show unknown ones as is. */
export const AWAITING = ['approval', 'start', 'extension_review', 'break_glass_review'] as const;

/** Multi-party approvals: per group, how many are needed and how many it has. */
export const ApprovalProgress = Type.Object({
  from: Type.String(),
  required: Type.Integer(),
  approved: Type.Integer(),
});
export type ApprovalProgress = Static<typeof ApprovalProgress>;

export const EXTENSION_STATES = ['pending', 'approved', 'denied', 'cancelled', 'expired'] as const;

/** The latest extension asked for on a grant (`POST /v1/requests/:id/extend`). */
export const Extension = Type.Object({
  /** 1 for the first extension of the grant, 2 for the second, … */
  round: Type.Integer(),
  state: Type.Union(EXTENSION_STATES.map((s) => Type.Literal(s))),
  /** How much longer. */
  duration: Type.String(),
  reason: Nullable(Type.String()),
  requested_at: Type.String(),
  approvals_required: Type.Integer(),
  approvals_by: Nullable(Type.Array(ApprovalProgress)),
  reviews: Type.Array(Review),
  /** Name it in a review (`fingerprint`) to be sure the review is of this extension. */
  fingerprint: Type.String(),
});
export type Extension = Static<typeof Extension>;

export const BREAK_GLASS_VERDICTS = ['acknowledged', 'flagged'] as const;

/** A break-glass grant's review after the fact. */
export const BreakGlass = Type.Object({
  review_by: Type.String(),
  /** Unreviewed past `review_by`. */
  overdue: Type.Boolean(),
  verdict: Nullable(Type.Union(BREAK_GLASS_VERDICTS.map((s) => Type.Literal(s)))),
  reviewer: Nullable(Identity),
  comment: Nullable(Type.String()),
  reviewed_at: Nullable(Type.String()),
});
export type BreakGlass = Static<typeof BreakGlass>;

/** Optional on the wire so that a newer CLI reads an older broker's requests. */
const LIFECYCLE_FIELDS = {
  /** When the window opens (scheduled requests); null: at approval. */
  starts_at: Type.Optional(Nullable(Type.String())),
  /** What the request waits for now: values of {@link AWAITING}; empty when nothing. */
  awaiting: Type.Optional(Type.Array(Type.String())),
  /** Multi-party approvals: progress per group; null for a plain count. */
  approvals_by: Type.Optional(Nullable(Type.Array(ApprovalProgress))),
  /** The approval rule that approved or denied it at filing. */
  decided_by_rule: Type.Optional(Nullable(Type.String())),
  /** Approved extensions in total (`1h`); null when never extended. */
  extended: Type.Optional(Nullable(Type.String())),
  extension: Type.Optional(Nullable(Extension)),
  break_glass: Type.Optional(Nullable(BreakGlass)),
};

export const ExtendBody = Type.Object(
  {
    duration: Type.String({ minLength: 1, maxLength: 32 }),
    reason: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
export type ExtendBody = Static<typeof ExtendBody>;

export const BreakGlassReviewBody = Type.Object(
  {
    verdict: Type.Union([Type.Literal('acknowledge'), Type.Literal('flag')]),
    comment: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
export type BreakGlassReviewBody = Static<typeof BreakGlassReviewBody>;

/** `GET /v1/requests?break_glass=…` */
export const BREAK_GLASS_FILTERS = [
  'any',
  'unreviewed',
  'overdue',
  'acknowledged',
  'flagged',
] as const;
export type BreakGlassFilter = (typeof BREAK_GLASS_FILTERS)[number];

/** A request object (docs/api.md). */
export const AccessRequest = Type.Object({
  id: Type.String(),
  role: Type.String(),
  state: RequestState,
  requester: Identity,
  duration: Type.String(),
  reason: Nullable(Type.String()),
  ticket: Nullable(Type.String()),
  created_at: Type.String(),
  /** While pending: when the request lapses (pending TTL). Once approved: when the credential window ends. */
  expires_at: Type.String(),
  approvals_required: Type.Integer(),
  reviews: Type.Array(Review),
  /** Policy entries that may review (`group:leads`, `user:lee@example.com`). */
  approvers: Type.Array(Type.String()),
  /** A short digest of what a reviewer decides on; a review may name it to refuse a changed request. */
  fingerprint: Type.String(),
  ...LIFECYCLE_FIELDS,
});
export type AccessRequest = Static<typeof AccessRequest>;

export const LIMITS = {
  role: 128,
  duration: 32,
  reason: 1000,
  ticket: 200,
  comment: 1000,
  fingerprint: 128,
  idempotencyKey: 200,
  /** Request bodies larger than this are refused with 413. */
  bodyBytes: 64 * 1024,
} as const;

export const CreateRequestBody = Type.Object(
  {
    role: Type.String({ minLength: 1, maxLength: LIMITS.role }),
    duration: Type.Optional(Type.String({ maxLength: LIMITS.duration })),
    reason: Type.Optional(Type.String({ maxLength: LIMITS.reason })),
    ticket: Type.Optional(Type.String({ maxLength: LIMITS.ticket })),
    /** RFC 3339: the window opens then (the duration counts from it, or from approval if later). */
    starts_at: Type.Optional(Type.String({ maxLength: 64 })),
    /** Take the role at once, reviewed afterwards (roles with `break_glass`); needs a reason. */
    break_glass: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CreateRequestBody = Static<typeof CreateRequestBody>;

export const ReviewBody = Type.Object(
  {
    decision: Decision,
    comment: Type.Optional(Type.String({ maxLength: LIMITS.comment })),
    fingerprint: Type.Optional(Type.String({ maxLength: LIMITS.fingerprint })),
  },
  { additionalProperties: false },
);
export type ReviewBody = Static<typeof ReviewBody>;

export const RequestPage = Type.Object({
  items: Type.Array(AccessRequest),
  next_cursor: Nullable(Type.String()),
});
export type RequestPage = Static<typeof RequestPage>;

/** A role's settings for using a grant on the requester's machine (docs/policy.md). */
export const UseSettingsSchema = Type.Object({
  on_revoke: Type.Union([Type.Literal('end'), Type.Literal('warn')]),
  kill_at_expiry: Type.Boolean(),
  audit_commands: Type.Union([Type.Literal('none'), Type.Literal('name'), Type.Literal('full')]),
  audit_commands_required: Type.Boolean(),
});
export type UseSettings = Static<typeof UseSettingsSchema>;

export const CredentialResponse = Type.Object({
  token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_at: Type.String(),
  /** The role's env templates, rendered (e.g. `KUBE_TOKEN`). */
  env: Type.Record(Type.String(), Type.String()),
  /**
   * The grant's end: `expires_at` is this credential's own (the role's `credential.ttl`), and the
   * CLI mints a fresh one until then. Optional: older brokers leave it out.
   */
  grant_expires_at: Type.Optional(Type.String()),
  /** This credential's id (its `jti` claim): what a revocation and a reported use name. */
  jti: Type.Optional(Type.String()),
  /** How the role wants the grant used on the requester's machine (docs/policy.md). */
  use: Type.Optional(UseSettingsSchema),
});
export type CredentialResponse = Static<typeof CredentialResponse>;

export const ConfigResponse = Type.Object({
  issuer: Type.String(),
  client_id: Type.String(),
  scopes: Type.Array(Type.String()),
  device_flow: Type.Boolean(),
  version: Type.String(),
  /**
   * The acr values (space-separated, any one will do) that a sign-in should reach so that
   * requesting a role needs no second sign-in: the strongest `step_up` among requestable roles.
   * Absent when no role asks for one. `jitctl login` asks the identity provider for it.
   */
  sign_in_acr_values: Type.Optional(Type.String()),
});
export type ConfigResponse = Static<typeof ConfigResponse>;

export const StepUp = Type.Object({ acr: Type.String(), max_age: Type.String() });
export type StepUp = Static<typeof StepUp>;

export const RoleSummary = Type.Object({
  name: Type.String(),
  description: Nullable(Type.String()),
  default_duration: Type.String(),
  max_duration: Type.String(),
  pending_ttl: Type.String(),
  approvals: Type.Integer(),
  denials: Type.Integer(),
  require_reason: Type.Boolean(),
  step_up: Nullable(StepUp),
  requesters: Type.Array(Type.String()),
  approvers: Type.Array(Type.String()),
  audience: Type.String(),
  /** Names of the env variables the credential comes with (values are rendered at minting). */
  env: Type.Array(Type.String()),
  can_request: Type.Boolean(),
  can_review: Type.Boolean(),
  /** Set when an access review's removal stops the caller filing (then `can_request` is false). */
  access_removed: Type.Optional(Type.String()),
  // ---- lifecycle (optional: older brokers leave them out) ----
  approvals_by: Type.Optional(
    Nullable(Type.Array(Type.Object({ from: Type.String(), count: Type.Integer() }))),
  ),
  require_review_comment: Type.Optional(Type.Boolean()),
  extend: Type.Optional(
    Nullable(
      Type.Object({
        max_total: Type.String(),
        approvals: Type.Integer(),
        require_reason: Type.Boolean(),
      }),
    ),
  ),
  break_glass: Type.Optional(
    Nullable(Type.Object({ review_within: Type.String(), max_per_week: Type.Integer() })),
  ),
  max_pending: Type.Optional(Type.Integer()),
  rules: Type.Optional(
    Type.Array(Type.Object({ name: Type.String(), decision: Type.String(), when: Type.String() })),
  ),
  // ---- revocation (optional: older brokers leave them out) ----
  /** How long one credential lasts (`credential.ttl`); a fresh one is minted while the grant lasts. */
  credential_ttl: Type.Optional(Type.String()),
  /** on_revoke, kill_at_expiry, audit_commands, audit_commands_required */
  use: Type.Optional(UseSettingsSchema),
});
export type RoleSummary = Static<typeof RoleSummary>;

export const RolesResponse = Type.Object({ roles: Type.Array(RoleSummary) });
export type RolesResponse = Static<typeof RolesResponse>;

export const MeResponse = Type.Object({
  iss: Type.String(),
  sub: Type.String(),
  name: Nullable(Type.String()),
  email: Nullable(Type.String()),
  groups: Type.Array(Type.String()),
  /** Roles this identity may request. */
  requestable: Type.Array(Type.String()),
  /** Roles whose requests this identity may review. */
  reviewable: Type.Array(Type.String()),
  auditor: Type.Boolean(),
});
export type MeResponse = Static<typeof MeResponse>;

/** What happens to a request: the events webhooks receive and long polls wake on. */
export const REQUEST_EVENT_TYPES = [
  'request.created',
  'review.recorded',
  'request.approved',
  'request.denied',
  'request.cancelled',
  'request.expired',
  'request.revoked',
  // the lifecycle's: a scheduled window opens; extensions; break-glass use and its review
  'request.activated',
  'extension.requested',
  'extension.approved',
  'extension.denied',
  'extension.cancelled',
  'extension.expired',
  'break_glass.used',
  'break_glass.acknowledged',
  'break_glass.flagged',
  'break_glass.overdue',
] as const;
export type RequestEventType = (typeof REQUEST_EVENT_TYPES)[number];

/** Events that want someone's attention now (their webhook payload says `priority: "high"`). */
export const HIGH_PRIORITY_EVENTS: readonly RequestEventType[] = [
  'break_glass.used',
  'break_glass.overdue',
  'break_glass.flagged',
];

/** Every audit event type: the request events, each credential minted, and each pipeline sign-in
 * by token exchange (RFC 8693). */
export const AUDIT_EVENT_TYPES = [
  ...REQUEST_EVENT_TYPES,
  'credential.minted',
  'session.exchanged',
  // Signing keys (`jitctl server keys`): data holds kid, alg and times, never key material.
  'key.created',
  'key.rotated',
  'key.retired',
  // Commands run under a grant, as `jitctl exec`/`shell` report them (POST /v1/requests/:id/uses).
  'command.started',
  'command.ended',
  // Access reviews (docs/governance.md): a campaign opened, a decision, its close, and the
  // broker's reminder before the due date and notice once it is overdue.
  'access_review.started',
  'access_review.decided',
  'access_review.closed',
  'access_review.reminder',
  'access_review.overdue',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export const AuditEvent = Type.Object({
  seq: Type.Integer(),
  at: Type.String(),
  /** One of {@link AUDIT_EVENT_TYPES}; a string on the wire so older verifiers read newer logs. */
  type: Type.String(),
  request_id: Nullable(Type.String()),
  actor: Nullable(Identity),
  data: Type.Record(Type.String(), Type.Unknown()),
  prev_hash: Type.String(),
  hash: Type.String(),
});
export type AuditEvent = Static<typeof AuditEvent>;

/** A request's role and requester, which its later events do not repeat (for OCSF output). */
export const AuditRequestContext = Type.Object({ role: Type.String(), requester: Identity });
export type AuditRequestContext = Static<typeof AuditRequestContext>;

export const AuditPage = Type.Object({
  items: Type.Array(AuditEvent),
  /** Pass as `after` to get the next page; null at the end of the log. */
  next_after: Nullable(Type.Integer()),
  /** With `?with=requests`: the role and requester of each request the page's events name. */
  requests: Type.Optional(Type.Record(Type.String(), AuditRequestContext)),
});
export type AuditPage = Static<typeof AuditPage>;

/** One revoked grant (`GET /v1/revocations`, and the `request.revoked` notification). */
export const Revocation = Type.Object({
  request_id: Type.String(),
  role: Type.String(),
  /** Every credential of the grant that was still valid when it was revoked. */
  jtis: Type.Array(Type.String()),
  revoked_at: Type.String(),
  revoked_by: Nullable(Identity),
  /** Why, as the revoker said (`jitctl revoke --reason`); null when none was given. */
  reason: Nullable(Type.String()),
  /** When the revoked credentials would have expired; entries can be dropped after this. */
  expires_at: Type.String(),
});
export type Revocation = Static<typeof Revocation>;
export const RevocationsResponse = Type.Object({
  items: Type.Array(Revocation),
  /** Pass as `cursor` to follow the list: the next page, or (with `wait`) what comes next. */
  next_cursor: Type.String(),
});
export type RevocationsResponse = Static<typeof RevocationsResponse>;

export const ErrorResponse = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    hint: Type.Optional(Type.String()),
  }),
});

/** RFC 8693 token exchange response (`POST /v1/token`). */
export const TokenExchangeResponse = Type.Object({
  access_token: Type.String(),
  issued_token_type: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
});
export type TokenExchangeResponse = Static<typeof TokenExchangeResponse>;

/** Header names of the API. */
export const Headers = {
  idempotencyKey: 'idempotency-key',
} as const;

/** The longest `wait` a long poll accepts; longer asks are capped, not refused. */
export const MAX_WAIT_MS = 60_000;

// Audit streaming and checkpoints (`jitctl audit tail`, `GET /v1/audit/checkpoint`).

/** `GET /v1/audit/checkpoint`: the chain's head signed by the broker (src/api/audit-checkpoint.ts). */
export const AuditCheckpoint = Type.Object({
  /** The compact JWS; what follows is what it says, for reading. */
  jws: Type.String(),
  seq: Type.Integer(),
  hash: Type.String(),
  signed_at: Type.String(),
  kid: Type.String(),
});
export type AuditCheckpoint = Static<typeof AuditCheckpoint>;
// ---- governance: the access report and access reviews (src/api/governance.ts) ----
export * from './governance.js';
