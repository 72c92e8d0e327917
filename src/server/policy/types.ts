/**
 * The policy model the broker evaluates (parsed from the policy YAML; see
 * docs/policy.md). Durations are milliseconds here; the wire shows them as strings.
 */

/** Who a policy entry names: `group:<name>` (the groups claim) or `user:<sub or email>`. */
export type Principal = { kind: 'group'; name: string } | { kind: 'user'; value: string };

/** The authenticated caller as the broker sees it. Identity is iss + sub, never email alone. */
export interface Caller {
  iss: string;
  sub: string;
  name: string | null;
  email: string | null;
  /** False when the token says the email is unverified; then `user:<email>` entries do not match. */
  emailVerified: boolean;
  groups: string[];
  acr: string | null;
  /** Seconds since the epoch (the token's auth_time), or null when absent. */
  authTime: number | null;
  /**
   * Set for pipelines signed in by token exchange (RFC 8693): the trusted issuer entry that
   * vouched for them. A workload cannot step up, so step-up refusals say so (403, not a challenge).
   */
  workload?: { issuer: string; entry: string } | undefined;
}

export interface StepUpRule {
  /** The acr the caller must have reached at least (order: the broker's acr_levels). */
  acr: string;
  /** How recent the authentication must be. */
  maxAgeMs: number;
}

export interface RolePolicy {
  name: string;
  description: string | null;
  requesters: Principal[];
  approvers: Principal[];
  /** Distinct approvers needed; 0 means requests are approved at once (auto-approve). */
  approvals: number;
  /** Distinct denials that deny the request (default 1: one deny denies). */
  denials: number;
  defaultDurationMs: number;
  maxDurationMs: number;
  pendingTtlMs: number;
  requireReason: boolean;
  /** For requesting and for reviewing this role; reviews without it use the broker's default. */
  stepUp: StepUpRule | null;
  credential: {
    audience: string;
    /** Variable name → template; `{{token}}`, `{{role}}`, `{{request_id}}`, `{{expires_at}}`. */
    env: Record<string, string>;
    /**
     * How long one credential lasts (`credential.ttl`), at most the grant's window; the CLI mints
     * a fresh one while the grant lasts. Absent: DEFAULT_CREDENTIAL_TTL_MS (role-credential.ts).
     */
    ttlMs?: number;
  };
  // ---- the lifecycle's keys (docs/policy.md "Extensions", "Break-glass", "Approval rules") ----
  /**
   * Multi-party approval: distinct approvals needed from each principal, all together (a reviewer
   * counts for one of them); null when `approvals` is a plain number. `approvals` is their sum.
   */
  approvalGroups: ApprovalGroup[] | null;
  /** Approvers must give a comment with each review. */
  requireReviewComment: boolean;
  /** Whether and how a live grant may be extended; null: never. */
  extend: ExtendPolicy | null;
  /** Whether a requester may take the role at once and be reviewed afterwards; null: never. */
  breakGlass: BreakGlassPolicy | null;
  /** Pending requests one person may have for this role at a time. */
  maxPending: number;
  /** Decide a request at filing (first match); none matching: reviewed as usual. */
  rules: AutoRule[];
  /** Using the grant on a person's machine (role-use.ts); absent: DEFAULT_USE. */
  use?: UsePolicy;
}

export interface ApprovalGroup {
  from: Principal;
  count: number;
}

export interface ExtendPolicy {
  /** All extensions of one grant together, at most. */
  maxTotalMs: number;
  /** Approvals an extension needs (0: at once); the role's own by default. */
  approvals: number;
  approvalGroups: ApprovalGroup[] | null;
  requireReason: boolean;
}

export interface BreakGlassPolicy {
  /** How soon after use an approver must acknowledge or flag it. */
  reviewWithinMs: number;
  /** Break-glass uses per person and role in any 7 days. */
  maxPerWeek: number;
}

/** Days 0 (Sunday) to 6, minutes from midnight; `to` before `from` wraps past midnight. */
export interface TimeWindow {
  days: number[];
  fromMinute: number;
  toMinute: number;
  timeZone: string;
  /** As written, for messages. */
  text: string;
}

export interface AutoRule {
  name: string;
  decision: 'approve' | 'deny';
  /** The requester is on the broker's on-call list (policy `on_call`). */
  onCall?: boolean;
  /** The access starts inside this window. */
  within?: TimeWindow;
  /** The access starts outside this window. */
  outside?: TimeWindow;
  /** The ticket matches (the whole ticket). */
  ticket?: RegExp;
  /** The duration asked for is at most this. */
  maxDurationMs?: number;
  /** The requester is one of these. */
  requesters?: Principal[];
}

export interface OnCallSource {
  /** A file path (relative to the policy file) or an https:// URL. */
  source: string;
  refreshMs: number;
}

/** A role's `on_revoke`, `kill_at_expiry`, `audit_commands`, `audit_commands_required`. */
export interface UsePolicy {
  /** A running `jitctl exec`/`shell` whose grant is revoked: `end` it, or only `warn`. */
  onRevoke: 'end' | 'warn';
  /** `jitctl exec` ends the command when the grant ends, as with `--kill-at-expiry`. */
  killAtExpiry: boolean;
  /** What of a command run under the grant is reported: nothing, the program, or all (redacted). */
  auditCommands: 'none' | 'name' | 'full';
  /** A command does not start unless its start was reported to the broker. */
  auditCommandsRequired: boolean;
}

/** The body a webhook receives: jitctl's signed JSON event, or a Slack incoming-webhook message. */
export type WebhookFormat = 'standard' | 'slack';

/** Filters every `notify` entry may have; null: every role, every event. */
export interface NotifyFilter {
  roles: string[] | null;
  events: string[] | null;
}

export interface WebhookTarget extends NotifyFilter {
  kind: 'webhook';
  /** A secret (a Slack webhook's path is its credential): shown by origin only. */
  webhook: string;
  format: WebhookFormat;
  /** The name of the signing secret in the broker's `webhook_secrets`; null: `default`. */
  secret: string | null;
}

/** `approvers` and `requester` are resolved per event from the people directory. */
export type EmailRecipient =
  | { kind: 'approvers' }
  | { kind: 'requester' }
  | { kind: 'address'; address: string };

export interface EmailTarget extends NotifyFilter {
  kind: 'email';
  to: EmailRecipient[];
}

export type NotifyTarget = WebhookTarget | EmailTarget;

export interface Policy {
  roles: ReadonlyMap<string, RolePolicy>;
  notify: NotifyTarget[];
  /** Where the on-call list comes from (rules with `on_call: true`); null: nobody is on call. */
  onCall?: OnCallSource | null;
}

/** One problem in a policy file: where (file, line, column, path) and why. */
export interface PolicyIssue {
  file: string;
  line: number | null;
  column: number | null;
  /** e.g. `roles.prod-deploy.max_duration`; empty for the file as a whole or a YAML syntax error. */
  path: string;
  message: string;
}

export class PolicyError extends Error {
  override name = 'PolicyError';
  constructor(readonly issues: PolicyIssue[]) {
    super(issues.map(formatPolicyIssue).join('\n'));
  }
}

/**
 * `file:line:col: path: message`, the shape compilers use so editors and CI annotate the line.
 * Issues about the whole file (unreadable, a YAML syntax error) have an empty path and omit it.
 */
export function formatPolicyIssue(i: PolicyIssue): string {
  const where = i.line !== null ? `${i.file}:${i.line}:${i.column ?? 1}` : i.file;
  return i.path === '' ? `${where}: ${i.message}` : `${where}: ${i.path}: ${i.message}`;
}
