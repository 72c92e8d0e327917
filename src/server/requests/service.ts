import type { Kysely } from 'kysely';
import type {
  AccessRequest,
  CreateRequestBody,
  CredentialResponse,
  ReviewBody,
} from '../../api/schemas.js';
import { requireStepUp } from '../auth/step-up.js';
import { canRequest, canReview } from '../policy/principal.js';
import type { Caller, Policy } from '../policy/types.js';
import { liveCredentials } from '../revocation/credentials.js';
import { dueForExpiry, getRequest, getReviews } from '../store/requests.js';
import type { Database, RequestRow } from '../store/schema.js';
import { RequestCore } from './core.js';
import { fileRequest } from './filing.js';
import {
  checkCanceller,
  checkReview,
  checkReviewer,
  checkRevoker,
  decide,
  expiredError,
  type PersonEvent,
  publishedOf,
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

  isAuditor(c: Caller): boolean {
    return this.#core.isAuditor(c);
  }

  isAdmin(c: Caller): boolean {
    return this.#core.isAdmin(c);
  }

  requestableRoles(c: Caller): string[] {
    return [...this.deps.policy.roles.values()].filter((r) => canRequest(r, c)).map((r) => r.name);
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

  async review(caller: Caller, id: string, body: ReviewBody): Promise<AccessRequest> {
    const core = this.#core;
    const first = await core.load(id);
    const role = checkReviewer(first, core.role(first.role), core.who(first, caller));
    const row = await core.settle(first);
    const who = core.who(row, caller);
    checkReview(row, await getReviews(this.deps.db.kysely, id), who, body);
    requireStepUp(
      caller,
      role.stepUp ?? this.deps.access.reviewStepUp,
      this.deps.access.acrLevels,
      core.now(),
      `reviewing ${id}`,
    );
    const written = await this.#apply(id, caller, (w) => ({ kind: 'review', who: w, body }));
    const comment = body.comment ?? null;
    written.review = { decision: body.decision, comment };
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

  /**
   * One event in one transaction: lock the request, apply what time changed first (then the
   * event is refused: the request expired), ask the lifecycle what the event does, write it.
   */
  async #apply(
    id: string,
    caller: Caller,
    event: (who: Who, tx: Kysely<Database>) => PersonEvent | Promise<PersonEvent>,
  ): Promise<Written> {
    const { writer } = this.#core;
    const written = await writer.transaction(async (tx): Promise<Written> => {
      const now = this.#core.now();
      const locked = await writer.lock(tx, id);
      const who = this.#core.who(locked, caller);
      const before = await getReviews(tx, id);
      const settled = await writer.settleLocked(tx, locked, now);
      if (settled) return settled;
      const change = decide(locked, before, await event(who, tx), now);
      if (change === 'unchanged') return { row: locked, reviews: before, events: [], actor: null };
      const row = await writer.commit(tx, locked, change, now);
      return {
        row,
        reviews: change.review ? await getReviews(tx, id) : before,
        events: publishedOf(change),
        actor: who.identity,
      };
    });
    if (written.expiredInstead) {
      this.#core.writer.published(written);
      throw expiredError(written.row);
    }
    return written;
  }

  #answer(written: Written): AccessRequest {
    this.#core.writer.published(written);
    return toWire(written.row, written.reviews);
  }
}
