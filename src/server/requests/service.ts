import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { canonicalJson } from '../../api/audit-chain.js';
import { formatDuration } from '../../api/duration.js';
import { ErrorCode } from '../../api/errors.js';
import type {
  AccessRequest,
  CreateRequestBody,
  CredentialResponse,
  Identity,
  RequestEventType,
  RequestState,
  ReviewBody,
} from '../../api/schemas.js';
import { appendAudit, type NewAuditEvent } from '../audit/log.js';
import { acceptableAcrValues, requireStepUp, strongestStepUp } from '../auth/step-up.js';
import { type ChangeHub, notifyReplicas } from '../changes.js';
import type { ServerClock } from '../clock.js';
import {
  AuditAppendError,
  durationOf,
  forbidden,
  HttpError,
  invalidState,
  notFound,
} from '../errors.js';
import type { Metrics } from '../metrics.js';
import { type SignedCredential, signCredential } from '../mint/credential.js';
import type { KeyRing } from '../mint/keys.js';
import { canRequest, canReview, formatPrincipal, renderEnv } from '../policy/index.js';
import type { Caller, Policy, RolePolicy, StepUpRule } from '../policy/types.js';
import { type Db, isUniqueViolation } from '../store/database.js';
import {
  activeRevocations,
  dueForExpiry,
  findByIdempotencyKey,
  getRequest,
  getReviews,
  getReviewsOf,
  hasReviewed,
  insertRequest,
  insertReview,
  listRequests,
  updateRequest,
} from '../store/requests.js';
import type { Database, RequestRow, ReviewRow } from '../store/schema.js';
import { newRequestId, REQUEST_ID_PATTERN } from './ids.js';
import { etagOf, fingerprintOf, iso, toWire } from './wire.js';

/**
 * The rules of the request states (docs/architecture.md "States and time"), in one place. Routes parse
 * HTTP and call these; every check that matters is made again inside the transaction that writes,
 * on the row locked for update, so concurrent callers (or replicas) cannot both pass a check that
 * only one of them should.
 *
 * Every change and its audit events commit together. Afterwards (never before the commit), long
 * polls are woken, the webhook notifier is told and metrics are counted.
 */

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
}

export interface RequestQuery {
  state?: RequestState;
  mine?: boolean;
  reviewable?: boolean;
  beforeSeq?: number;
  limit: number;
}

const identityOf = (c: Caller): Identity => ({ iss: c.iss, sub: c.sub, name: c.name });

const isRequester = (row: RequestRow, c: Pick<Caller, 'iss' | 'sub'>) =>
  row.requester_iss === c.iss && row.requester_sub === c.sub;

const isDue = (row: RequestRow, now: number) =>
  (row.state === 'pending' || row.state === 'approved') && row.expires_at <= now;

const approversOf = (reviews: ReviewRow[]): Identity[] =>
  reviews
    .filter((r) => r.decision === 'approve')
    .map((r) => ({ iss: r.reviewer_iss, sub: r.reviewer_sub, name: r.reviewer_name }));

/** A transaction's outcome: what to answer, and what happened (to publish after commit). */
interface Written {
  row: RequestRow;
  reviews: ReviewRow[];
  events: RequestEventType[];
  actor: Identity | null;
  /** Set when the transaction found the request expired (and expired it) instead of acting. */
  expiredInstead?: boolean;
  review?: { decision: 'approve' | 'deny'; comment: string | null };
}

export class RequestService {
  constructor(private readonly deps: ServiceDeps) {}

  get policy(): Policy {
    return this.deps.policy;
  }

  /**
   * The acr values (RFC 9470 form) a sign-in should reach so that requesting any role of the
   * policy needs no second sign-in: the strongest `step_up` among roles someone may request.
   * `GET /v1/config` tells `jitctl login`, which cannot know the person before they sign in.
   */
  signInAcrValues(): string | null {
    const rules = [...this.deps.policy.roles.values()]
      .filter((r) => r.requesters.length > 0 && r.stepUp !== null)
      .map((r) => r.stepUp as StepUpRule);
    const levels = this.deps.access.acrLevels;
    const strongest = strongestStepUp(rules, levels);
    return strongest ? acceptableAcrValues(strongest, levels) : null;
  }

  isAuditor(c: Caller): boolean {
    return c.groups.some((g) => this.deps.access.auditors.includes(g));
  }

  isAdmin(c: Caller): boolean {
    return c.groups.some((g) => this.deps.access.admins.includes(g));
  }

  requestableRoles(c: Caller): string[] {
    return [...this.deps.policy.roles.values()].filter((r) => canRequest(r, c)).map((r) => r.name);
  }

  reviewableRoles(c: Caller): string[] {
    return [...this.deps.policy.roles.values()].filter((r) => canReview(r, c)).map((r) => r.name);
  }

  // ---- create ---------------------------------------------------------------------------------

  async create(
    caller: Caller,
    body: CreateRequestBody,
    idempotencyKey: string | undefined,
  ): Promise<{ request: AccessRequest; replayed: boolean }> {
    const now = this.deps.clock.now();
    const role = this.deps.policy.roles.get(body.role);
    if (!role) {
      const mine = this.requestableRoles(caller);
      throw new HttpError(
        400,
        ErrorCode.UnknownRole,
        `there is no role ${JSON.stringify(body.role)}`,
        mine.length > 0
          ? `roles you may request: ${mine.join(', ')}`
          : 'you may not request any role; ask an administrator to add you to a requester group',
      );
    }
    if (!canRequest(role, caller)) {
      throw forbidden(
        `you may not request role ${role.name}`,
        `its requesters are ${role.requesters.map(formatPrincipal).join(', ')}`,
      );
    }
    const durationMs =
      body.duration === undefined
        ? role.defaultDurationMs
        : durationOf('duration', body.duration, 'durations look like 15m, 1h30m, 90s or 2d');
    if (durationMs > role.maxDurationMs) {
      throw new HttpError(
        400,
        ErrorCode.DurationTooLong,
        `\`duration\` ${formatDuration(durationMs)} is longer than the maximum of ${formatDuration(role.maxDurationMs)} for role ${role.name}`,
        `ask for ${formatDuration(role.maxDurationMs)} or less`,
      );
    }
    const reason = body.reason ?? null;
    if (role.requireReason && (reason === null || reason.trim() === '')) {
      throw new HttpError(
        400,
        ErrorCode.ReasonRequired,
        `role ${role.name} requires a reason`,
        'say why you need it, e.g. --reason "hotfix INC-4211"',
      );
    }
    requireStepUp(caller, role.stepUp, this.deps.access.acrLevels, now, `requesting ${role.name}`);

    const bodyHash = createHash('sha256')
      .update(
        canonicalJson({
          role: body.role,
          duration: body.duration ?? null,
          reason: body.reason ?? null,
          ticket: body.ticket ?? null,
        }),
      )
      .digest('hex');
    const replay = (existing: RequestRow) => {
      if (existing.idempotency_hash !== bodyHash) {
        throw new HttpError(
          422,
          ErrorCode.IdempotencyKeyReused,
          'this Idempotency-Key was already used for a different request',
          'use a new Idempotency-Key for each new request',
        );
      }
    };

    const run = () =>
      this.#write(async (tx) => {
        if (idempotencyKey !== undefined) {
          const existing = await findByIdempotencyKey(tx, caller.iss, caller.sub, idempotencyKey);
          if (existing) {
            replay(existing);
            return null;
          }
        }
        const id = newRequestId();
        const base = {
          id,
          role: role.name,
          requester_iss: caller.iss,
          requester_sub: caller.sub,
          duration_ms: durationMs,
          reason,
          ticket: body.ticket ?? null,
          created_at: now,
        };
        const auto = role.approvals === 0;
        const row = {
          ...base,
          state: (auto ? 'approved' : 'pending') as RequestState,
          requester_name: caller.name,
          expires_at: auto ? now + durationMs : now + role.pendingTtlMs,
          approved_at: auto ? now : null,
          ended_at: null,
          approvals_required: role.approvals,
          denials_required: role.denials,
          approvers: JSON.stringify(role.approvers.map(formatPrincipal)),
          fingerprint: fingerprintOf(base),
          review_count: 0,
          idempotency_key: idempotencyKey ?? null,
          idempotency_hash: idempotencyKey !== undefined ? bodyHash : null,
        };
        const seq = await insertRequest(tx, row);
        const audit: NewAuditEvent[] = [
          {
            type: 'request.created',
            request_id: id,
            actor: identityOf(caller),
            data: {
              role: role.name,
              duration: formatDuration(durationMs),
              reason,
              ticket: row.ticket,
              approvals_required: role.approvals,
              denials_required: role.denials,
              expires_at: iso(row.expires_at),
              fingerprint: row.fingerprint,
            },
          },
        ];
        const events: RequestEventType[] = ['request.created'];
        if (auto) {
          audit.push({
            type: 'request.approved',
            request_id: id,
            actor: null,
            data: { auto: true, approvals: 0, expires_at: iso(row.expires_at) },
          });
          events.push('request.approved');
        }
        await this.#audit(tx, now, audit);
        return {
          row: { ...row, seq },
          reviews: [],
          events,
          actor: identityOf(caller),
        } satisfies Written;
      });

    let written: Written | null;
    try {
      written = await run();
    } catch (err) {
      // Two retries with one key racing on PostgreSQL: the loser reads the winner's request.
      if (idempotencyKey === undefined || !isUniqueViolation(err)) throw err;
      written = null;
    }
    if (written === null) {
      const existing = await findByIdempotencyKey(
        this.deps.db.kysely,
        caller.iss,
        caller.sub,
        idempotencyKey!,
      );
      if (!existing) throw new Error('idempotent request vanished');
      replay(existing);
      const fresh = await this.#expireIfDue(existing);
      return {
        request: toWire(fresh, await getReviews(this.deps.db.kysely, fresh.id)),
        replayed: true,
      };
    }
    this.deps.metrics.requestsCreated.inc({ role: role.name });
    this.#published(written);
    return { request: toWire(written.row, written.reviews), replayed: false };
  }

  // ---- read -----------------------------------------------------------------------------------

  /** Loads a request the caller may see, expiring it first if its time has passed. */
  async get(
    caller: Caller,
    id: string,
  ): Promise<{ request: AccessRequest; etag: string; row: RequestRow }> {
    const row = await this.#visible(caller, id);
    const fresh = await this.#expireIfDue(row);
    const reviews = await getReviews(this.deps.db.kysely, id);
    return { request: toWire(fresh, reviews), etag: etagOf(fresh), row: fresh };
  }

  /** The current ETag and deadline of a request (long poll re-checks), expiring it if due. */
  async peek(id: string): Promise<RequestRow | undefined> {
    const row = await getRequest(this.deps.db.kysely, id);
    return row ? this.#expireIfDue(row) : undefined;
  }

  async list(
    caller: Caller,
    q: RequestQuery,
  ): Promise<{ items: AccessRequest[]; nextBeforeSeq: number | null }> {
    await this.expireDue(50);
    const self = { iss: caller.iss, sub: caller.sub };
    const seesAll = this.isAdmin(caller) || this.isAuditor(caller);
    const base = {
      ...(q.state ? { state: q.state } : {}),
      ...(q.beforeSeq !== undefined ? { beforeSeq: q.beforeSeq } : {}),
      limit: q.limit + 1,
    };
    let rows: RequestRow[];
    if (q.mine) {
      rows = await listRequests(this.deps.db.kysely, { ...base, requester: self });
    } else if (q.reviewable) {
      rows = await listRequests(this.deps.db.kysely, {
        ...base,
        roles: this.reviewableRoles(caller),
        rolesOnly: true,
        self,
        excludeSelf: true,
      });
    } else {
      rows = await listRequests(this.deps.db.kysely, {
        ...base,
        ...(seesAll ? {} : { roles: this.reviewableRoles(caller), self }),
      });
    }
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    const reviews = await getReviewsOf(
      this.deps.db.kysely,
      page.map((r) => r.id),
    );
    return {
      items: page.map((r) => toWire(r, reviews.get(r.id) ?? [])),
      nextBeforeSeq: more ? page[page.length - 1]!.seq : null,
    };
  }

  async revocations(): Promise<
    { request_id: string; role: string; revoked_at: string; expires_at: string }[]
  > {
    const rows = await activeRevocations(this.deps.db.kysely, this.deps.clock.now());
    return rows.map((r) => ({
      request_id: r.id,
      role: r.role,
      revoked_at: iso(r.ended_at ?? r.created_at),
      expires_at: iso(r.expires_at),
    }));
  }

  // ---- review ---------------------------------------------------------------------------------

  async review(caller: Caller, id: string, body: ReviewBody): Promise<AccessRequest> {
    const first = await this.#load(id);
    const role = this.#roleOf(first, 'reviewed');
    // Self-review is refused before anything else, whatever groups the token claims: identity is
    // issuer + subject, so a second token for the same person is the same person.
    if (isRequester(first, caller)) {
      throw new HttpError(
        403,
        ErrorCode.SelfReview,
        'you cannot review your own request',
        `ask one of ${JSON.parse(first.approvers).join(', ')} to review it`,
      );
    }
    if (!canReview(role, caller)) {
      throw forbidden(
        `you may not review requests for role ${role.name}`,
        `its approvers are ${role.approvers.map(formatPrincipal).join(', ')}`,
      );
    }
    const row = await this.#expireIfDue(first);
    this.#assertReviewable(row, body);
    if (await hasReviewed(this.deps.db.kysely, id, caller.iss, caller.sub)) throw alreadyReviewed();
    const rule = role.stepUp ?? this.deps.access.reviewStepUp;
    requireStepUp(
      caller,
      rule,
      this.deps.access.acrLevels,
      this.deps.clock.now(),
      `reviewing ${id}`,
    );

    const written = await this.#write(async (tx) => {
      const now = this.deps.clock.now();
      const locked = await this.#lock(tx, id);
      if (isDue(locked, now)) return this.#expireLocked(tx, locked, now);
      this.#assertReviewable(locked, body);
      if (await hasReviewed(tx, id, caller.iss, caller.sub)) throw alreadyReviewed();
      try {
        await insertReview(tx, {
          request_id: id,
          reviewer_iss: caller.iss,
          reviewer_sub: caller.sub,
          reviewer_name: caller.name,
          decision: body.decision,
          comment: body.comment ?? null,
          at: now,
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw alreadyReviewed();
        throw err;
      }
      const reviews = await getReviews(tx, id);
      const approvals = reviews.filter((r) => r.decision === 'approve').length;
      const denials = reviews.filter((r) => r.decision === 'deny').length;
      const audit: NewAuditEvent[] = [
        {
          type: 'review.recorded',
          request_id: id,
          actor: identityOf(caller),
          data: { decision: body.decision, comment: body.comment ?? null, approvals, denials },
        },
      ];
      const events: RequestEventType[] = ['review.recorded'];
      const patch: Partial<RequestRow> = { review_count: locked.review_count + 1 };
      if (body.decision === 'deny' && denials >= locked.denials_required) {
        Object.assign(patch, { state: 'denied', ended_at: now });
        audit.push({
          type: 'request.denied',
          request_id: id,
          actor: identityOf(caller),
          data: { denials, denials_required: locked.denials_required },
        });
        events.push('request.denied');
      } else if (body.decision === 'approve' && approvals >= locked.approvals_required) {
        const expiresAt = now + locked.duration_ms;
        Object.assign(patch, { state: 'approved', approved_at: now, expires_at: expiresAt });
        audit.push({
          type: 'request.approved',
          request_id: id,
          actor: identityOf(caller),
          data: {
            approvals,
            approvals_required: locked.approvals_required,
            duration: formatDuration(locked.duration_ms),
            expires_at: iso(expiresAt),
          },
        });
        events.push('request.approved');
      }
      await updateRequest(tx, id, patch);
      await this.#audit(tx, now, audit);
      return {
        row: { ...locked, ...patch },
        reviews,
        events,
        actor: identityOf(caller),
        review: { decision: body.decision, comment: body.comment ?? null },
      } satisfies Written;
    });
    if (written.expiredInstead) {
      this.#published(written);
      throw expiredError(written.row);
    }
    this.deps.metrics.reviews.inc({ decision: body.decision });
    this.#published(written);
    return toWire(written.row, written.reviews);
  }

  #assertReviewable(row: RequestRow, body: ReviewBody): void {
    if (row.state !== 'pending') {
      throw invalidState(
        `request ${row.id} is ${row.state}; only pending requests can be reviewed`,
        row.state === 'approved' ? 'to end it early, revoke it' : undefined,
      );
    }
    if (body.fingerprint !== undefined && body.fingerprint !== row.fingerprint) {
      throw new HttpError(
        409,
        ErrorCode.FingerprintMismatch,
        `request ${row.id} no longer matches fingerprint ${body.fingerprint} (it is ${row.fingerprint})`,
        'show the request again and review what it says now',
      );
    }
  }

  // ---- cancel and revoke ----------------------------------------------------------------------

  async cancel(caller: Caller, id: string): Promise<AccessRequest> {
    const row = await this.#load(id);
    if (!isRequester(row, caller)) {
      throw forbidden('only the requester can cancel a request', 'reviewers deny it instead');
    }
    return this.#end(caller, id, 'pending', 'cancelled', 'request.cancelled');
  }

  async revoke(caller: Caller, id: string): Promise<AccessRequest> {
    const row = await this.#load(id);
    const role = this.deps.policy.roles.get(row.role);
    const allowed =
      isRequester(row, caller) || (role && canReview(role, caller)) || this.isAdmin(caller);
    if (!allowed) {
      throw forbidden(
        'only the requester, an approver of the role or an administrator can revoke a request',
      );
    }
    return this.#end(caller, id, 'approved', 'revoked', 'request.revoked');
  }

  /** pending → cancelled or approved → revoked; repeating it is a no-op that answers the request. */
  async #end(
    caller: Caller,
    id: string,
    from: 'pending' | 'approved',
    to: 'cancelled' | 'revoked',
    type: 'request.cancelled' | 'request.revoked',
  ): Promise<AccessRequest> {
    const written = await this.#write(async (tx) => {
      const now = this.deps.clock.now();
      const locked = await this.#lock(tx, id);
      if (locked.state === to) {
        return {
          row: locked,
          reviews: await getReviews(tx, id),
          events: [],
          actor: null,
        } satisfies Written;
      }
      if (isDue(locked, now)) return this.#expireLocked(tx, locked, now);
      if (locked.state !== from) {
        throw invalidState(
          `request ${id} is ${locked.state}; only ${from} requests can be ${to}`,
          to === 'revoked' && locked.state === 'pending'
            ? 'a pending request is withdrawn with `jitctl cancel`'
            : to === 'cancelled' && locked.state === 'approved'
              ? 'an approved request is ended with `jitctl revoke`'
              : undefined,
        );
      }
      await updateRequest(tx, id, { state: to, ended_at: now });
      await this.#audit(tx, now, [
        {
          type,
          request_id: id,
          actor: identityOf(caller),
          data:
            to === 'revoked' ? { window_ends_at: iso(locked.expires_at) } : { role: locked.role },
        },
      ]);
      return {
        row: { ...locked, state: to, ended_at: now },
        reviews: await getReviews(tx, id),
        events: [type],
        actor: identityOf(caller),
      } satisfies Written;
    });
    if (written.expiredInstead) {
      this.#published(written);
      throw expiredError(written.row);
    }
    this.#published(written);
    return toWire(written.row, written.reviews);
  }

  // ---- credential -----------------------------------------------------------------------------

  async mint(caller: Caller, id: string): Promise<CredentialResponse> {
    const row = await this.#load(id);
    if (!isRequester(row, caller)) {
      throw forbidden('only the requester can get the credential of a request');
    }
    const role = this.#roleOf(row, 'used');
    // Sign ahead, outside the write transaction: jose signs through WebCrypto's thread pool, and
    // inside the transaction each round trip would hold SQLite's only connection (PostgreSQL's
    // audit head lock). What is signed cannot change while the request stays approved (its
    // requester, role, window and approvers are set by the approval, which leaves it only for a
    // terminal state; the key and policy are fixed for the broker's life), so the signature is
    // good if the locked row is still approved. Only a request approved meanwhile is signed inside.
    const ahead =
      row.state === 'approved'
        ? await this.#signFor(
            row,
            role,
            this.deps.clock.now(),
            await getReviews(this.deps.db.kysely, id),
          )
        : undefined;
    let minted: CredentialResponse | undefined;
    const written = await this.#write(async (tx) => {
      const now = this.deps.clock.now();
      const locked = await this.#lock(tx, id);
      if (isDue(locked, now)) return this.#expireLocked(tx, locked, now);
      if (locked.state !== 'approved') {
        const reviews = await getReviews(tx, id);
        throw invalidState(
          locked.state === 'pending'
            ? `request ${id} is still pending (${reviews.filter((r) => r.decision === 'approve').length} of ${locked.approvals_required} approvals)`
            : `request ${id} is ${locked.state}; only approved requests get a credential`,
          locked.state === 'pending' ? `wait for it: jitctl wait ${id}` : 'file a new request',
        );
      }
      const signed = ahead ?? (await this.#signFor(locked, role, now, await getReviews(tx, id)));
      // Whole seconds, rounded down: the credential never outlives the approved window.
      const { issuedAt, expiresAt } = signed;
      if (expiresAt <= Math.floor(now / 1000)) {
        throw invalidState(`request ${id}'s window ends this second; file a new request`);
      }
      const expiresIso = iso(expiresAt * 1000);
      await this.#audit(tx, now, [
        {
          type: 'credential.minted',
          request_id: id,
          actor: identityOf(caller),
          data: {
            jti: signed.jti,
            aud: role.credential.audience,
            kid: this.deps.keys.current.kid,
            iat: iso(issuedAt * 1000),
            exp: expiresIso,
          },
        },
      ]);
      minted = {
        token: signed.token,
        token_type: 'Bearer',
        expires_at: expiresIso,
        env: renderEnv(role.credential.env, {
          token: signed.token,
          role: locked.role,
          request_id: id,
          expires_at: expiresIso,
        }),
      };
      return { row: locked, reviews: [], events: [], actor: identityOf(caller) } satisfies Written;
    });
    if (written.expiredInstead) {
      this.#published(written);
      throw expiredError(written.row);
    }
    this.deps.metrics.mints.inc({ role: role.name });
    // Only after the commit: a token whose audit event was rolled back is never handed out.
    return minted!;
  }

  /** Signs the credential of an approved request as of `now`; see mint. */
  async #signFor(
    row: RequestRow,
    role: RolePolicy,
    now: number,
    reviews: ReviewRow[],
  ): Promise<SignedCredential & { issuedAt: number; expiresAt: number }> {
    const issuedAt = Math.floor(now / 1000);
    const expiresAt = Math.floor(row.expires_at / 1000);
    const signed = await signCredential(this.deps.keys.current, {
      issuer: this.deps.publicUrl,
      subject: row.requester_sub,
      subjectIssuer: row.requester_iss,
      audience: role.credential.audience,
      role: row.role,
      requestId: row.id,
      approvers: approversOf(reviews),
      issuedAt,
      expiresAt,
    });
    return { ...signed, issuedAt, expiresAt };
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /**
   * Expires up to `limit` requests whose time has passed (the periodic sweep, and before a list).
   * One transaction per request so the sweep never holds the audit head for long.
   */
  async expireDue(limit = 100): Promise<number> {
    const ids = await dueForExpiry(this.deps.db.kysely, this.deps.clock.now(), limit);
    let n = 0;
    for (const id of ids) {
      const row = await getRequest(this.deps.db.kysely, id);
      if (row && (await this.#expireIfDue(row)) !== row) n++;
    }
    return n;
  }

  async #expireIfDue(row: RequestRow): Promise<RequestRow> {
    if (!isDue(row, this.deps.clock.now())) return row;
    const written = await this.#write(async (tx) => {
      const now = this.deps.clock.now();
      const locked = await this.#lock(tx, row.id);
      if (!isDue(locked, now))
        return { row: locked, reviews: [], events: [], actor: null } satisfies Written;
      return this.#expireLocked(tx, locked, now);
    });
    this.#published(written);
    return written.row;
  }

  /** Inside a transaction, on a locked row known to be due: mark it expired with its event. */
  async #expireLocked(tx: Kysely<Database>, locked: RequestRow, now: number): Promise<Written> {
    await updateRequest(tx, locked.id, { state: 'expired', ended_at: now });
    await this.#audit(tx, now, [
      {
        type: 'request.expired',
        request_id: locked.id,
        actor: null,
        data: {
          from: locked.state,
          deadline: iso(locked.expires_at),
        },
      },
    ]);
    return {
      row: { ...locked, state: 'expired', ended_at: now },
      reviews: await getReviews(tx, locked.id),
      events: ['request.expired'],
      actor: null,
      expiredInstead: true,
    };
  }

  // ---- plumbing -------------------------------------------------------------------------------

  async #load(id: string): Promise<RequestRow> {
    if (!REQUEST_ID_PATTERN.test(id))
      throw notFound(`no request ${JSON.stringify(id)}`, 'request ids look like req_7Hq2Xn4pQr9a');
    const row = await getRequest(this.deps.db.kysely, id);
    if (!row) throw notFound(`no request ${id}`, 'list yours with `jitctl list --mine`');
    return row;
  }

  /** Requester, approvers of the role, admins and auditors may see a request. */
  async #visible(caller: Caller, id: string): Promise<RequestRow> {
    const row = await this.#load(id);
    const role = this.deps.policy.roles.get(row.role);
    const ok =
      isRequester(row, caller) ||
      (role !== undefined && canReview(role, caller)) ||
      this.isAdmin(caller) ||
      this.isAuditor(caller);
    if (!ok) {
      throw forbidden(
        `you may not see request ${id}: you neither filed it nor review role ${row.role}`,
      );
    }
    return row;
  }

  #roleOf(row: RequestRow, what: string): RolePolicy {
    const role = this.deps.policy.roles.get(row.role);
    if (!role) {
      throw invalidState(
        `role ${row.role} is no longer in the policy, so request ${row.id} cannot be ${what}`,
      );
    }
    return role;
  }

  async #lock(tx: Kysely<Database>, id: string): Promise<RequestRow> {
    const row = await getRequest(tx, id, this.deps.db.dialect);
    if (!row) throw notFound(`no request ${id}`);
    return row;
  }

  async #audit(tx: Kysely<Database>, now: number, events: NewAuditEvent[]): Promise<void> {
    // Before the append: PostgreSQL delivers the notification only at commit, and the append
    // holds the audit head's lock until then, so nothing else should run after it.
    if (this.deps.db.dialect === 'postgres' && events[0]?.request_id) {
      await notifyReplicas(tx, events[0].request_id);
    }
    try {
      await appendAudit(tx, this.deps.db.dialect, now, events);
    } catch (err) {
      if (err instanceof AuditAppendError) this.deps.metrics.auditFailures.inc();
      throw err;
    }
    for (const e of events) this.deps.metrics.auditAppends.inc({ type: e.type });
  }

  #write<T>(fn: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.deps.db.transaction(fn);
  }

  /** After a commit: wake long polls, tell the notifier, count transitions. */
  #published(w: Written): void {
    if (w.events.length === 0) return;
    this.deps.hub.publish(w.row.id);
    for (const type of w.events) {
      if (type !== 'request.created' && type !== 'review.recorded')
        this.deps.metrics.transitions.inc({ to: type.slice('request.'.length) });
    }
    if (!this.deps.onEvent) return;
    const request = toWire(w.row, w.reviews);
    const at = new Date(this.deps.clock.now()).toISOString();
    for (const type of w.events) {
      try {
        this.deps.onEvent({ type, request, actor: w.actor, review: w.review ?? null, at });
      } catch {
        // notification is best effort and never undoes a committed change
      }
    }
  }
}

function alreadyReviewed(): HttpError {
  return new HttpError(409, ErrorCode.AlreadyReviewed, 'you have already reviewed this request');
}

function expiredError(row: RequestRow): HttpError {
  return invalidState(`request ${row.id} has expired`, 'file a new request');
}
