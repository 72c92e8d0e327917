import { type Static, type TSchema, Type } from '@sinclair/typebox';

/**
 * The wire contract of governance (docs/governance.md): the access report (`GET /v1/reports`) and
 * access reviews (`/v1/access-reviews`). Re-exported by schemas.ts, where the broker client looks
 * the answer schemas up by name. Times are RFC 3339; durations are strings (`15m`) with their
 * milliseconds beside them (`*_ms`) for whoever computes with them.
 */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** Someone the report or a campaign names: identity is issuer + subject. */
export const Who = Type.Object({
  iss: Type.String(),
  sub: Type.String(),
  name: Nullable(Type.String()),
});
export type Who = Static<typeof Who>;

// ---- the report ------------------------------------------------------------------------------

export const REPORT_FORMATS = ['json', 'text', 'md', 'csv', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** Nearest-rank percentiles of the time from filing to a person's decision. */
export const DecisionTimes = Type.Object({
  /** Requests decided by people (not approved or denied automatically, not break-glass). */
  decided: Type.Integer(),
  median: Nullable(Type.String()),
  median_ms: Nullable(Type.Integer()),
  p90: Nullable(Type.String()),
  p90_ms: Nullable(Type.Integer()),
});

/** Grants whose window ended (by time or revocation) among the period's requests. */
export const DurationUse = Type.Object({
  grants: Type.Integer(),
  /** Average duration asked for at filing. */
  asked_avg: Nullable(Type.String()),
  asked_avg_ms: Nullable(Type.Integer()),
  /** Average window granted: asked plus approved extensions. */
  granted_avg: Nullable(Type.String()),
  granted_avg_ms: Nullable(Type.Integer()),
  /** Average time from the window's start until it was revoked, or its end. */
  used_avg: Nullable(Type.String()),
  used_avg_ms: Nullable(Type.Integer()),
  /** Used time over granted time, all grants together (0 to 1). */
  used_share: Nullable(Type.Number()),
  /** Grants revoked before their window ended. */
  ended_early: Type.Integer(),
  /** Approved grants of the period whose window has not ended yet (not counted above). */
  still_active: Type.Integer(),
});

export const ApproverPair = Type.Object({
  reviewer: Who,
  requester: Who,
  /** Approvals (of requests and of extensions) in the period. */
  approvals: Type.Integer(),
  /** The requester also approved the reviewer in the period (any role): a finding. */
  mutual: Type.Boolean(),
});

export const BREAK_GLASS_STATUSES = ['acknowledged', 'flagged', 'unreviewed', 'overdue'] as const;

export const BreakGlassUse = Type.Object({
  request_id: Type.String(),
  requester: Who,
  at: Type.String(),
  reason: Nullable(Type.String()),
  status: Type.Union(BREAK_GLASS_STATUSES.map((s) => Type.Literal(s))),
  reviewer: Nullable(Who),
  reviewed_at: Nullable(Type.String()),
  comment: Nullable(Type.String()),
});

export const BreakGlassSummary = Type.Object({
  uses: Type.Integer(),
  acknowledged: Type.Integer(),
  flagged: Type.Integer(),
  /** Not reviewed yet, deadline not passed. */
  unreviewed: Type.Integer(),
  /** Not reviewed, past its deadline. */
  overdue: Type.Integer(),
  /** The newest uses (at most 50 per role). */
  items: Type.Array(BreakGlassUse),
});

export const FrequentRequester = Type.Object({
  person: Who,
  /** The most requests for the role within any one window of the threshold's length. */
  most_within: Type.Integer(),
  /** Requests for the role in the whole period. */
  requests: Type.Integer(),
});

export const ProgramUse = Type.Object({
  /** The program's name (its directory left out); `(shell)` for `jitctl shell` sessions. */
  program: Type.String(),
  runs: Type.Integer(),
  people: Type.Integer(),
  /** Ended with a non-zero status or a signal. */
  failed: Type.Integer(),
  last_at: Nullable(Type.String()),
});

export const CommandSummary = Type.Object({
  runs: Type.Integer(),
  people: Type.Integer(),
  failed: Type.Integer(),
  /** Reported after the fact (the broker was unreachable when the command ran). */
  late: Type.Integer(),
  programs: Type.Array(ProgramUse),
});

export const UnusedEntry = Type.Object({
  /** The policy entry (`group:contractors`, `user:eve@example.com`) or `pipeline:<trusted issuer>`. */
  entry: Type.String(),
  /** People (or workloads) the broker's directory knows that it makes eligible. */
  known: Type.Integer(),
  /** How many of them filed a request for the role in the period. */
  used: Type.Integer(),
});

export const UnusedPerson = Type.Object({
  person: Who,
  /** The entries that make them eligible, by their last sign-in. */
  via: Type.Array(Type.String()),
  /** Their last request for the role ever, or null. */
  last_request_at: Nullable(Type.String()),
  last_seen_at: Type.String(),
});

export const Unused = Type.Object({
  /** Entries none of whose known people requested the role in the period. */
  entries: Type.Array(UnusedEntry),
  /** Eligible people (by the directory) with no request for the role in the period. */
  people: Type.Array(UnusedPerson),
  people_total: Type.Integer(),
});

export const RoleReport = Type.Object({
  role: Type.String(),
  description: Nullable(Type.String()),
  /** False for a role that has history in the period but is no longer in the policy. */
  in_policy: Type.Boolean(),
  requests: Type.Object({
    filed: Type.Integer(),
    approved: Type.Integer(),
    /** Of the approved: without a person (approvals: 0, an approval rule, break-glass). */
    approved_automatically: Type.Integer(),
    denied: Type.Integer(),
    /** Lapsed before anyone decided. */
    expired: Type.Integer(),
    cancelled: Type.Integer(),
    pending: Type.Integer(),
    revoked: Type.Integer(),
  }),
  time_to_decision: DecisionTimes,
  durations: DurationUse,
  approver_pairs: Type.Array(ApproverPair),
  break_glass: BreakGlassSummary,
  frequent: Type.Array(FrequentRequester),
  commands: CommandSummary,
  unused: Unused,
});
export type RoleReport = Static<typeof RoleReport>;

export const FINDING_KINDS = [
  'mutual_approval',
  'frequent_requester',
  'break_glass_overdue',
  'break_glass_flagged',
  'unused_entry',
] as const;

export const Finding = Type.Object({
  kind: Type.Union(FINDING_KINDS.map((k) => Type.Literal(k))),
  role: Nullable(Type.String()),
  /** One sentence, plain text. */
  message: Type.String(),
});
export type Finding = Static<typeof Finding>;

export const MutualApproval = Type.Object({
  a: Who,
  b: Who,
  a_approved_b: Type.Integer(),
  b_approved_a: Type.Integer(),
});

export const Report = Type.Object({
  generated_at: Type.String(),
  since: Type.String(),
  until: Type.String(),
  /** The period as asked (`30d`), or the two times. */
  period: Type.String(),
  role: Nullable(Type.String()),
  /** A person is listed as requesting unusually often at `count` requests within `within`. */
  frequent_threshold: Type.Object({ count: Type.Integer(), within: Type.String() }),
  totals: Type.Object({
    requests: Type.Integer(),
    approved: Type.Integer(),
    denied: Type.Integer(),
    break_glass: Type.Integer(),
    command_runs: Type.Integer(),
  }),
  findings: Type.Array(Finding),
  mutual_approvals: Type.Array(MutualApproval),
  roles: Type.Array(RoleReport),
});
export type Report = Static<typeof Report>;

// ---- access reviews ----------------------------------------------------------------------------

export const ACCESS_REVIEW_STATES = ['open', 'closed'] as const;
export const ACCESS_REVIEW_DECISIONS = ['keep', 'remove'] as const;
export type AccessReviewDecision = (typeof ACCESS_REVIEW_DECISIONS)[number];
/** `entry`: a policy entry; `pipeline`: a trusted issuer's workloads; `person`: someone who used it. */
export const ACCESS_REVIEW_ITEM_KINDS = ['entry', 'pipeline', 'person'] as const;
export type AccessReviewItemKind = (typeof ACCESS_REVIEW_ITEM_KINDS)[number];

export const AccessReviewItem = Type.Object({
  /** 1, 2, …: what `jitctl access-review decide <id> <n>` names. */
  n: Type.Integer(),
  role: Type.String(),
  kind: Type.Union(ACCESS_REVIEW_ITEM_KINDS.map((k) => Type.Literal(k))),
  /** `group:contractors`, `user:eve@example.com`, `pipeline:github-deploy`, or the person's name. */
  subject: Type.String(),
  /** Person items: who. */
  person: Nullable(Who),
  /** Person items: the entries that make them eligible now; pipelines: the groups they get. */
  via: Type.Array(Type.String()),
  /** Entries and pipelines: the people or workloads the directory knows that it covers. */
  known: Nullable(Type.Integer()),
  /** The last grant (approved request) of the role through this item, when the campaign opened. */
  last_used_at: Nullable(Type.String()),
  /** Grants in the 90 days before the campaign opened. */
  uses: Type.Integer(),
  decision: Nullable(Type.Union(ACCESS_REVIEW_DECISIONS.map((d) => Type.Literal(d)))),
  comment: Nullable(Type.String()),
  decided_by: Nullable(Who),
  decided_at: Nullable(Type.String()),
  /** For `remove`: `active` (enforced now) or `lapsed` (the policy changed since). */
  removal: Nullable(Type.Union([Type.Literal('active'), Type.Literal('lapsed')])),
  /** The caller's own access: they cannot decide on it. */
  yours: Type.Boolean(),
});
export type AccessReviewItem = Static<typeof AccessReviewItem>;

/** One change to make in the policy (or elsewhere) so that a removal holds after it lapses. */
export const PolicyEdit = Type.Object({
  role: Type.String(),
  /** `policy` (the policy file), `identity_provider` (group membership), `broker_config` (trusted_issuers), `none`. */
  where: Type.String(),
  change: Type.String(),
  /** The items it settles. */
  items: Type.Array(Type.Integer()),
});
export type PolicyEdit = Static<typeof PolicyEdit>;

export const AccessReview = Type.Object({
  id: Type.String(),
  title: Nullable(Type.String()),
  state: Type.Union(ACCESS_REVIEW_STATES.map((s) => Type.Literal(s))),
  roles: Type.Array(Type.String()),
  /** Policy principals who may decide (besides auditors and admins). */
  reviewers: Type.Array(Type.String()),
  created_by: Who,
  created_at: Type.String(),
  due_at: Type.String(),
  overdue: Type.Boolean(),
  closed_at: Nullable(Type.String()),
  closed_by: Nullable(Who),
  progress: Type.Object({
    items: Type.Integer(),
    kept: Type.Integer(),
    removed: Type.Integer(),
    undecided: Type.Integer(),
  }),
  /** Whether the caller may decide and close it. */
  can_decide: Type.Boolean(),
  link: Type.String(),
  /** In `GET /v1/access-reviews/:id` and the answers of decide and close; absent in lists. */
  items: Type.Optional(Type.Array(AccessReviewItem)),
  /** The edits that make the removals permanent (in the same answers as `items`). */
  edits: Type.Optional(Type.Array(PolicyEdit)),
});
export type AccessReview = Static<typeof AccessReview>;

export const AccessReviewList = Type.Object({ items: Type.Array(AccessReview) });
export type AccessReviewList = Static<typeof AccessReviewList>;

export const LIMITS_GOVERNANCE = {
  title: 200,
  comment: 1000,
  reviewers: 20,
  roles: 200,
} as const;

export const StartAccessReviewBody = Type.Object(
  {
    /** Roles to review; or `all: true`. */
    roles: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
        minItems: 1,
        maxItems: LIMITS_GOVERNANCE.roles,
      }),
    ),
    all: Type.Optional(Type.Boolean()),
    reviewers: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), {
      minItems: 1,
      maxItems: LIMITS_GOVERNANCE.reviewers,
    }),
    /** How long reviewers have, from now: `14d`. */
    due: Type.String({ minLength: 1, maxLength: 32 }),
    title: Type.Optional(Type.String({ maxLength: LIMITS_GOVERNANCE.title })),
  },
  { additionalProperties: false },
);
export type StartAccessReviewBody = Static<typeof StartAccessReviewBody>;

export const DecideAccessReviewBody = Type.Object(
  {
    item: Type.Integer({ minimum: 1 }),
    decision: Type.Union(ACCESS_REVIEW_DECISIONS.map((d) => Type.Literal(d))),
    /** Required to remove; optional to keep. */
    comment: Type.Optional(Type.String({ maxLength: LIMITS_GOVERNANCE.comment })),
  },
  { additionalProperties: false },
);
export type DecideAccessReviewBody = Static<typeof DecideAccessReviewBody>;
