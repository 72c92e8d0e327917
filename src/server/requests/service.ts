import type { Kysely } from 'kysely';
import type {
  AccessRequest,
  BreakGlassReviewBody,
  CreateRequestBody,
  CredentialResponse,
  ExtendBody,
  ReviewBody,
} from '../../api/schemas.js';
import { acceptableAcrValues, requireStepUp, strongestStepUp } from '../auth/step-up.js';
import { canRequest, canReview } from '../policy/principal.js';
import type { Caller, Policy, RolePolicy, StepUpRule } from '../policy/types.js';
import { liveCredentials } from '../revocation/credentials.js';
import { dueForExpiry, getRequest, getReviews } from '../store/requests.js';
import type { Database, RequestRow, ReviewRow } from '../store/schema.js';
import { RequestCore } from './core.js';
import { fileRequest } from './filing.js';
import {
  checkBreakGlassReviewer,
  checkCanceller,
  checkExtender,
  checkReview,
  checkReviewer,
  checkRevoker,
  decide,
  expiredError,
  type PersonEvent,
  publishedOf,
  roleOf,
  type Who,
} from './lifecycle/index.js';
import { mintCredential } from './minting.js';
import { getRequestFor, listFor } from './reading.js';
import type { RequestQuery, ServiceDeps } from './types.js';
import { toWire } from './wire.js';
import type { Written } from './writer.js';

export type { AccessSettings, RequestEvent, RequestQuery, ServiceDeps } from './types.js';

/**
 * The most `jti`s a `request.revoked` event (and its notification) carries; a grant with more live
 * credentials says so (`jtis_truncated`), and GET /v1/revocations lists them all.
 */
export const MAX_JTIS_IN_EVENT = 500;

/**
 * Requests as the routes (and the review pages) use them. The lifecycle itself, which event does
 * what to which state, who may and when, and which audit events it writes, is the pure module
 * lifecycle/ (docs/architecture.md "States and time"); this service loads a request, asks the
 * lifecycle, and writes its answer in one transaction (writer.ts). Every check that matters is
 * made again inside that transaction on the row locked for update, so concurrent callers (or
 * replicas) cannot both pass a check that only one of them should.
 *
 * Every change and its audit events commit together. Afterwards (never before the commit), long
 * polls are woken, the webhook notifier is told and metrics are counted.
 */
export class RequestService {
  readonly #core: RequestCore;

  constructor(private readonly deps: ServiceDeps) {
    this.#core = new RequestCore(deps);
  }

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
    return this.#core.isAuditor(c);
  }

  isAdmin(c: Caller): boolean {
    return this.#core.isAdmin(c);
  }

  requestableRoles(c: Caller): string[] {
    return [...this.deps.policy.roles.values()].filter((r) => canRequest(r, c)).map((r) => r.name);
  }

  /**
   * The roles whose filing an access review's removal in force refuses for `c`, each with the
   * refusal's words (the filing gate's `access_removed`); one indexed read per requestable role.
   */
  async removedFor(c: Caller): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const refusal = this.deps.refusal;
    if (!refusal) return out;
    for (const role of this.deps.policy.roles.values()) {
      if (!canRequest(role, c)) continue;
      const refused = await refusal(c, role);
      if (refused) out.set(role.name, refused.message);
    }
    return out;
  }

  /** The roles `c` may request now: the policy's, less those an access review removed. */
  async requestableNow(c: Caller): Promise<string[]> {
    const removed = await this.removedFor(c);
    return this.requestableRoles(c).filter((name) => !removed.has(name));
  }

  reviewableRoles(c: Caller): string[] {
    return [...this.deps.policy.roles.values()].filter((r) => canReview(r, c)).map((r) => r.name);
  }

  create(
    caller: Caller,
    body: CreateRequestBody,
    idempotencyKey: string | undefined,
  ): Promise<{ request: AccessRequest; replayed: boolean }> {
    return fileRequest(this.#core, caller, body, idempotencyKey, () =>
      this.requestableRoles(caller),
    );
  }

  /** Loads a request the caller may see, expiring it first if its time has passed. */
  get(
    caller: Caller,
    id: string,
  ): Promise<{ request: AccessRequest; etag: string; row: RequestRow }> {
    return getRequestFor(this.#core, caller, id);
  }

  /** The current ETag and deadline of a request (long poll re-checks), expiring it if due. */
  async peek(id: string): Promise<RequestRow | undefined> {
    const row = await getRequest(this.deps.db.kysely, id);
    return row ? this.#core.settle(row) : undefined;
  }

  async list(
    caller: Caller,
    q: RequestQuery,
  ): Promise<{ items: AccessRequest[]; nextBeforeSeq: number | null }> {
    await this.expireDue(50);
    return listFor(this.#core, caller, q, this.reviewableRoles(caller));
  }

  /**
   * A review of a pending request, or of the extension waiting on a grant (the same endpoint and
   * rules: what it lands on is what the request awaits; a `fingerprint` makes sure of it).
   */
  async review(caller: Caller, id: string, body: ReviewBody): Promise<AccessRequest> {
    const core = this.#core;
    const first = await core.load(id);
    const role = checkReviewer(first, core.role(first.role), core.who(first, caller));
    const row = await core.settle(first);
    try {
      this.#stepUpToReview(caller, role, id);
    } catch (err) {
      // What the request itself refuses is said before a step-up is asked for.
      checkReview(
        row,
        await getReviews(this.deps.db.kysely, id),
        core.who(row, caller),
        body,
        role,
      );
      throw err;
    }
    // checkReview runs again inside the transaction (onReview), on the locked row and its reviews.
    const written = await this.#apply(id, caller, (w) => ({ kind: 'review', who: w, body }));
    written.review = { decision: body.decision, comment: body.comment ?? null };
    this.deps.metrics.reviews.inc({ decision: body.decision });
    return this.#answer(written);
  }

  async cancel(caller: Caller, id: string): Promise<AccessRequest> {
    const row = await this.#core.load(id);
    checkCanceller(this.#core.who(row, caller));
    return this.#answer(await this.#apply(id, caller, (who) => ({ kind: 'cancel', who })));
  }

  /**
   * Ends a grant. The credentials still valid are read inside the transaction, with the row
   * locked, so that the `request.revoked` event names every one a mint committed before it.
   */
  async revoke(caller: Caller, id: string, reason?: string | null): Promise<AccessRequest> {
    const row = await this.#core.load(id);
    checkRevoker(this.#core.who(row, caller));
    return this.#answer(
      await this.#apply(id, caller, async (who, tx) => {
        const live = await liveCredentials(tx, id, this.#core.now(), MAX_JTIS_IN_EVENT + 1);
        return {
          kind: 'revoke',
          who,
          details: {
            reason: reason?.trim() || null,
            jtis: live.slice(0, MAX_JTIS_IN_EVENT).map((c) => c.jti),
            jtisTruncated: live.length > MAX_JTIS_IN_EVENT,
          },
        };
      }),
    );
  }

  /**
   * The requester asks to lengthen an approved grant (`POST /v1/requests/:id/extend`). With the
   * step-up of requesting the role; reviewed like a request unless `extend.approvals` is 0. The
   * answer is the request, whose `extension` says what became of the ask.
   */
  async extend(caller: Caller, id: string, body: ExtendBody): Promise<AccessRequest> {
    const core = this.#core;
    const row = await core.load(id);
    const { role } = checkExtender(row, core.role(row.role), core.who(row, caller), body);
    requireStepUp(caller, role.stepUp, this.deps.access.acrLevels, core.now(), `extending ${id}`);
    return this.#answer(await this.#apply(id, caller, (who) => ({ kind: 'extend', who, body })));
  }

  /**
   * An approver's review after the fact of a break-glass grant: `acknowledge`, or `flag` with a
   * comment (`POST /v1/requests/:id/break-glass-review`); the step-up of reviewing.
   */
  async acknowledgeBreakGlass(
    caller: Caller,
    id: string,
    body: BreakGlassReviewBody,
  ): Promise<AccessRequest> {
    const core = this.#core;
    const row = await core.load(id);
    const role = roleOf(row, core.role(row.role), 'reviewed');
    checkBreakGlassReviewer(row, core.who(row, caller));
    this.#stepUpToReview(caller, role, id);
    return this.#answer(
      await this.#apply(id, caller, (who) => ({ kind: 'acknowledge', who, body })),
    );
  }

  mint(caller: Caller, id: string): Promise<CredentialResponse> {
    return mintCredential(this.#core, caller, id);
  }

  /**
   * Expires up to `limit` requests whose time has passed (the periodic sweep, and before a list).
   * One transaction per request so the sweep never holds the audit head for long.
   */
  async expireDue(limit = 100): Promise<number> {
    const ids = await dueForExpiry(this.deps.db.kysely, this.#core.now(), limit);
    let n = 0;
    for (const id of ids) {
      const row = await getRequest(this.deps.db.kysely, id);
      if (row && (await this.#core.settle(row)) !== row) n++;
    }
    return n;
  }

  #stepUpToReview(caller: Caller, role: RolePolicy, id: string): void {
    requireStepUp(
      caller,
      role.stepUp ?? this.deps.access.reviewStepUp,
      this.deps.access.acrLevels,
      this.#core.now(),
      `reviewing ${id}`,
    );
  }

  /**
   * One event in one transaction: lock the request, apply what time changed first (when that
   * ended it, the event is refused: the request expired), ask the lifecycle what the event does,
   * write it.
   */
  async #apply(
    id: string,
    caller: Caller,
    event: (who: Who, tx: Kysely<Database>) => PersonEvent | Promise<PersonEvent>,
  ): Promise<Written> {
    const core = this.#core;
    const { writer } = core;
    const written = await writer.transaction(async (tx): Promise<Written> => {
      const now = core.now();
      const settled = await writer.settleLocked(tx, await writer.lock(tx, id), now);
      if (settled.expiredInstead) return settled;
      const row = settled.row;
      const who = core.who(row, caller);
      const before = await getReviews(tx, id);
      const change = decide(row, before, await event(who, tx), core.role(row.role), now);
      if (change === 'unchanged') return { ...settled, reviews: before };
      const next = await writer.commit(tx, row, change, now);
      return {
        row: next,
        reviews: change.review ? await withReview(tx, id, before, change.review) : before,
        events: [...settled.events, ...publishedOf(change)],
      };
    });
    if (written.expiredInstead) {
      writer.published(written);
      throw expiredError(written.row);
    }
    return written;
  }

  #answer(written: Written): AccessRequest {
    this.#core.writer.published(written);
    return toWire(written.row, written.reviews);
  }
}

/**
 * The reviews after `review` was inserted, in getReviews' order (`at`, then reviewer): the new one
 * last when it is later than every other, as it is unless two reviews share a millisecond; then
 * they are read again, so that the database's collation orders the tie.
 */
async function withReview(
  tx: Kysely<Database>,
  id: string,
  before: ReviewRow[],
  review: Omit<ReviewRow, 'request_id'>,
): Promise<ReviewRow[]> {
  if (before.every((r) => r.at < review.at)) return [...before, { request_id: id, ...review }];
  return getReviews(tx, id);
}
