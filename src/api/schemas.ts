import { type Static, type TSchema, Type } from '@sinclair/typebox';

/**
 * The wire contract of API v1 (docs/api.md). JSON Schemas that the
 * broker validates bodies and responses with, and the TypeScript types both halves use. Field
 * names are snake_case on the wire. Times are RFC 3339 UTC strings; durations are strings like
 * `15m` (src/api/duration.ts).
 */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const REQUEST_STATES = [
  'pending',
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
] as const;
export type RequestEventType = (typeof REQUEST_EVENT_TYPES)[number];

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

export const AuditPage = Type.Object({
  items: Type.Array(AuditEvent),
  /** Pass as `after` to get the next page; null at the end of the log. */
  next_after: Nullable(Type.Integer()),
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

// ---- revocation: the holder's grant check, revoking with a reason, uses of a grant ----

/** `POST /v1/requests/:id/revoke`: an optional reason, shown to the requester and relying parties. */
export const RevokeBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: LIMITS.reason })) },
  { additionalProperties: false },
);
export type RevokeBody = Static<typeof RevokeBody>;

/**
 * `POST /v1/credential/status` (`Authorization: Bearer <credential>`): the grant a credential
 * belongs to, as its holder may know it. `active` is the grant's, not the token's: an expired
 * credential of an active grant is answered `active: true` (the CLI mints a fresh one).
 */
export const GrantStatus = Type.Object({
  active: Type.Boolean(),
  request_id: Type.String(),
  role: Type.String(),
  state: Type.String(),
  /** The grant's end (moves when it is extended). */
  expires_at: Type.String(),
  revoked: Nullable(
    Type.Object({
      at: Type.String(),
      by: Nullable(Identity),
      reason: Nullable(Type.String()),
    }),
  ),
  use: UseSettingsSchema,
});
export type GrantStatus = Static<typeof GrantStatus>;

/** `POST /v1/requests/:id/uses`: `jitctl exec`/`shell` report a command run under the grant. */
export const UseReport = Type.Object(
  {
    /** Random, the same for the start and the end of one command; a repeat is answered as done. */
    use_id: Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    event: Type.Union([Type.Literal('start'), Type.Literal('end')]),
    kind: Type.Union([Type.Literal('exec'), Type.Literal('shell')]),
    /** The credential handed to the command. */
    jti: Type.Optional(Type.String({ maxLength: 128 })),
    host: Type.String({ maxLength: 255 }),
    os_user: Type.String({ maxLength: 255 }),
    cwd: Type.String({ maxLength: 4096 }),
    /** As the role's `audit_commands` allows: absent (none), [program] (name), redacted argv (full). */
    command: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 256 })),
    started_at: Type.String({ maxLength: 40 }),
    ended_at: Type.Optional(Type.String({ maxLength: 40 })),
    exit_code: Type.Optional(Nullable(Type.Integer())),
    signal: Type.Optional(Nullable(Type.String({ maxLength: 16 }))),
    /** Why jitctl ended it, if it did: `revoked`, `expired`. */
    ended_by: Type.Optional(Nullable(Type.String({ maxLength: 32 }))),
    /** When the report was first written down because the broker could not be reached. */
    queued_at: Type.Optional(Type.String({ maxLength: 40 })),
  },
  { additionalProperties: false },
);
export type UseReport = Static<typeof UseReport>;

export const UseRecorded = Type.Object({
  /** False when this use and event had already been recorded (a repeated report). */
  recorded: Type.Boolean(),
});
export type UseRecorded = Static<typeof UseRecorded>;
