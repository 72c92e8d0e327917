import type {
  AccessRequest,
  BreakGlassFilter,
  Identity,
  RequestEventType,
  RequestState,
} from '../../api/schemas.js';
import type { ChangeHub } from '../changes.js';
import type { ServerClock } from '../clock.js';
import type { HttpError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { KeyRing } from '../mint/keys.js';
import type { Caller, Policy, RolePolicy, StepUpRule } from '../policy/types.js';
import type { Db } from '../store/database.js';

/** The request service's settings and events, apart from the service so its parts can share them. */

export interface AccessSettings {
  /** Ranking of `acr` values, weakest first. */
  acrLevels: string[];
  /** Step-up for reviews of roles without their own `step_up`; null: none. */
  reviewStepUp: StepUpRule | null;
  /** Groups whose members may revoke any request and see every request. */
  admins: string[];
  /** Groups whose members may read the audit log and see every request. */
  auditors: string[];
}

export interface RequestEvent {
  type: RequestEventType;
  request: AccessRequest;
  /** Who caused it; null for expiry and auto-approval. */
  actor: Identity | null;
  /** The review that caused it (review.recorded, and the approval or denial it completed). */
  review: { decision: 'approve' | 'deny'; comment: string | null } | null;
  at: string;
  /**
   * `high` for break-glass use, a break-glass use left unreviewed past its deadline, and a flagged
   * one: routing (security contacts, paging) should not wait for a digest.
   */
  priority: 'high' | 'normal';
}

export interface ServiceDeps {
  db: Db;
  policy: Policy;
  clock: ServerClock;
  hub: ChangeHub;
  metrics: Metrics;
  keys: KeyRing;
  /** The credential issuer (`iss` of minted JWTs). */
  publicUrl: string;
  access: AccessSettings;
  /** Told about state changes after commit; must not throw or block (webhooks run on their own). */
  onEvent?: (event: RequestEvent) => void;
  /** Who is on call now (approval rules with `on_call: true`); absent: nobody. */
  onCall?: { has(caller: Caller): boolean };
  /**
   * Why `caller` may not file for `role` although the policy allows it (an access review's
   * removal in force, src/server/governance/), or null. Asked before a request is filed, and for
   * what /v1/me and /v1/roles say may be requested. Absent: nothing more to check.
   */
  refusal?: (caller: Caller, role: RolePolicy) => Promise<HttpError | null>;
}

export interface RequestQuery {
  state?: RequestState;
  breakGlass?: BreakGlassFilter;
  /** Approved grants whose extension waits for review. */
  extensionPending?: boolean;
  mine?: boolean;
  reviewable?: boolean;
  beforeSeq?: number;
  limit: number;
}
