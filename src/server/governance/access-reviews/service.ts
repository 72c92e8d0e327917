import { formatDuration } from '../../../api/duration.js';
import { ErrorCode } from '../../../api/errors.js';
import type {
  AccessReview,
  AccessReviewList,
  DecideAccessReviewBody,
  StartAccessReviewBody,
} from '../../../api/governance.js';
import type { Identity } from '../../../api/schemas.js';
import { appendAudit, type NewAuditEvent } from '../../audit/log.js';
import { requireStepUp } from '../../auth/step-up.js';
import type { ServerClock } from '../../clock.js';
import {
  badRequest,
  durationOf,
  forbidden,
  HttpError,
  invalidState,
  notFound,
} from '../../errors.js';
import type { TrustedIssuer } from '../../federation/config.js';
import { formatPrincipal } from '../../policy/principal.js';
import type { Caller, Policy, RolePolicy, StepUpRule } from '../../policy/types.js';
import { newRequestId } from '../../requests/ids.js';
import type { Db } from '../../store/database.js';
import type { AccessReviewRow } from '../../store/schema.js';
import { itemsForRole, type NewItem } from './items.js';
import {
  type Access,
  basisOf,
  isOwnAccess,
  MAX_DUE_MS,
  MIN_DUE_MS,
  mayDecide,
  mayRead,
  mayStart,
  parseReviewers,
  policyEdits,
  reminderAt,
  removalFor,
} from './rules.js';
import * as store from './store.js';
import { campaignToWire, type WireContext } from './wire.js';

/**
 * Access reviews (docs/governance.md "Access reviews"): campaigns opened by auditors or admins,
 * decided by them and the reviewers they name, closed with the policy edits to make. A removal
 * takes effect at once: {@link AccessReviewService.refusal} refuses a filing it covers. Every change
 * is audited in the same transaction; the reminder before the due date and the overdue notice are
 * audit events too, which the notification outbox routes like any other.
 */

export interface AccessReviewDeps {
  db: Db;
  clock: ServerClock;
  policy: Policy;
  trustedIssuers: readonly TrustedIssuer[];
  publicUrl: string;
  access: Access;
  /** The broker's `review_step_up`: a decision is a review and needs the same fresh sign-in. */
  stepUp?: { rule: StepUpRule | null; acrLevels: readonly string[] };
  /** Told after each commit that wrote audit events (wakes the notification outbox). */
  onAudit?: () => void;
}

const CAMPAIGN_ID = /^ar_[1-9A-HJ-NP-Za-km-z]{12}$/;
const who = (c: Caller): Identity => ({ iss: c.iss, sub: c.sub, name: c.name });
const whoJson = (c: Caller) => JSON.stringify(who(c));
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export class AccessReviewService {
  constructor(private readonly deps: AccessReviewDeps) {}

  #ctx(caller: Caller, row: AccessReviewRow | null): WireContext {
    return {
      caller,
      canDecide:
        row !== null && mayDecide(caller, JSON.parse(row.reviewers) as string[], this.deps.access),
      roles: this.deps.policy.roles,
      issuers: this.deps.trustedIssuers,
      publicUrl: this.deps.publicUrl,
      now: this.deps.clock.now(),
    };
  }

  async #wire(caller: Caller, row: AccessReviewRow, withItems: boolean): Promise<AccessReview> {
    const q = this.deps.db.kysely;
    const progress = (await store.progressOf(q, [row.id])).get(row.id) ?? {
      items: 0,
      kept: 0,
      removed: 0,
    };
    const items = withItems ? await store.itemsOf(q, row.id) : undefined;
    return campaignToWire(row, progress, this.#ctx(caller, row), items);
  }

  async #commit(fn: Parameters<Db['transaction']>[0]): Promise<void> {
    await this.deps.db.transaction(fn);
    this.deps.onAudit?.();
  }

  async start(caller: Caller, body: StartAccessReviewBody): Promise<AccessReview> {
    if (!mayStart(caller, this.deps.access))
      throw forbidden('only auditors and admins may start an access review');
    const { policy, db } = this.deps;
    let roles: RolePolicy[];
    if (body.all === true) {
      if (body.roles) throw badRequest('give `roles` or `all`, not both');
      roles = [...policy.roles.values()];
      if (roles.length === 0) throw badRequest('the policy has no roles to review');
    } else {
      if (!body.roles) throw badRequest('name the roles to review (`roles`), or `all: true`');
      roles = [];
      for (const name of body.roles) {
        const r = policy.roles.get(name);
        if (!r)
          throw new HttpError(
            400,
            ErrorCode.UnknownRole,
            `there is no role ${JSON.stringify(name.slice(0, 128))} in the policy`,
            `roles: ${[...policy.roles.keys()].join(', ') || '(none)'}`,
          );
        if (!roles.includes(r)) roles.push(r);
      }
    }
    const reviewers = parseReviewers(body.reviewers);
    if ('error' in reviewers)
      throw badRequest(
        reviewers.error,
        'reviewers look like group:security or user:lee@example.com',
      );
    const dueMs = durationOf('due', body.due, 'give how long reviewers have, e.g. 14d');
    if (dueMs < MIN_DUE_MS || dueMs > MAX_DUE_MS)
      throw badRequest(
        `\`due\` must be from ${formatDuration(MIN_DUE_MS)} to ${formatDuration(MAX_DUE_MS)}`,
        'e.g. 14d',
      );
    const now = this.deps.clock.now();
    const items: NewItem[] = [];
    for (const r of roles)
      items.push(
        ...(await itemsForRole(db.kysely, r, this.deps.trustedIssuers, this.deps.publicUrl, now)),
      );
    const row: AccessReviewRow = {
      id: `ar_${newRequestId().slice(4)}`,
      title: body.title?.trim() || null,
      state: 'open',
      roles: JSON.stringify(roles.map((r) => r.name)),
      reviewers: JSON.stringify(reviewers.map(formatPrincipal)),
      created_by: whoJson(caller),
      created_at: now,
      due_at: now + dueMs,
      remind_at: reminderAt(now, now + dueMs),
      reminded_at: null,
      overdue_at: null,
      closed_at: null,
      closed_by: null,
    };
    await this.#commit(async (tx) => {
      await store.insertCampaign(tx, row, items);
      await appendAudit(tx, db.dialect, now, [
        this.#event('access_review.started', row, who(caller), { items: items.length }),
      ]);
    });
    return this.#wire(caller, row, true);
  }

  #event(
    type: NewAuditEvent['type'],
    row: AccessReviewRow,
    actor: Identity | null,
    data: Record<string, unknown>,
  ): NewAuditEvent {
    const roles = JSON.parse(row.roles) as string[];
    return {
      type,
      request_id: null,
      actor,
      data: {
        campaign_id: row.id,
        ...(row.title ? { title: row.title } : {}),
        roles,
        // One role: routes restricted to roles (`notify: … roles:`) see it.
        ...(roles.length === 1 ? { role: roles[0] } : {}),
        reviewers: JSON.parse(row.reviewers) as string[],
        due_at: new Date(row.due_at).toISOString(),
        ...data,
      },
    };
  }

  async list(caller: Caller, state?: 'open' | 'closed'): Promise<AccessReviewList> {
    const q = this.deps.db.kysely;
    const rows = (await store.listCampaigns(q, state, 500)).filter((r) =>
      mayRead(caller, JSON.parse(r.reviewers) as string[], this.deps.access),
    );
    const page = rows.slice(0, 100);
    const progress = await store.progressOf(
      q,
      page.map((r) => r.id),
    );
    return {
      items: page.map((r) =>
        campaignToWire(
          r,
          progress.get(r.id) ?? { items: 0, kept: 0, removed: 0 },
          this.#ctx(caller, r),
        ),
      ),
    };
  }

  async #readable(caller: Caller, id: string): Promise<AccessReviewRow> {
    if (!CAMPAIGN_ID.test(id))
      throw notFound(
        `no access review ${JSON.stringify(id.slice(0, 40))}`,
        'ids look like ar_7Hq2Xn4pQr9a; `jitctl access-review list` shows them',
      );
    const row = await store.getCampaign(this.deps.db.kysely, id);
    if (!row) throw notFound(`no access review ${id}`, '`jitctl access-review list` shows them');
    if (!mayRead(caller, JSON.parse(row.reviewers) as string[], this.deps.access))
      throw forbidden(
        `you may not see access review ${id}: you are not one of its reviewers (${(JSON.parse(row.reviewers) as string[]).join(', ')}), an auditor or an admin`,
      );
    return row;
  }

  async get(caller: Caller, id: string): Promise<AccessReview> {
    return this.#wire(caller, await this.#readable(caller, id), true);
  }

  async decide(caller: Caller, id: string, body: DecideAccessReviewBody): Promise<AccessReview> {
    await this.#readable(caller, id);
    const { db } = this.deps;
    const comment = body.comment?.trim() || null;
    if (body.decision === 'remove' && comment === null)
      throw badRequest('a removal needs a comment saying why', 'add --comment "…"');
    const now = this.deps.clock.now();
    const stepUp = this.deps.stepUp;
    if (stepUp)
      requireStepUp(caller, stepUp.rule, stepUp.acrLevels, now, `deciding in access review ${id}`);
    await this.#commit(async (tx) => {
      const row = await store.lockCampaign(tx, id, db.dialect === 'postgres');
      if (!row) throw notFound(`no access review ${id}`);
      if (row.state !== 'open')
        throw invalidState(`access review ${id} is closed; its decisions are final`);
      const item = await store.getItem(tx, id, body.item);
      if (!item)
        throw notFound(
          `access review ${id} has no item ${body.item}`,
          `\`jitctl access-review show ${id}\` lists its items`,
        );
      if (isOwnAccess(item, caller))
        throw forbidden(
          `item ${item.n} (${item.subject} for ${item.role}) is your own access; nobody decides on their own access`,
          'another reviewer decides it',
        );
      const basis =
        body.decision === 'remove'
          ? basisOf(this.deps.policy.roles.get(item.role), item, this.deps.trustedIssuers)
          : null;
      await store.decideItem(tx, id, item.n, {
        decision: body.decision,
        comment,
        decided_by: whoJson(caller),
        decided_at: now,
        basis,
      });
      await appendAudit(tx, db.dialect, now, [
        this.#event('access_review.decided', row, who(caller), {
          item: item.n,
          role: item.role,
          kind: item.kind,
          subject: item.subject,
          ...(item.subject_sub
            ? { subject_iss: item.subject_iss, subject_sub: item.subject_sub }
            : {}),
          decision: body.decision,
          ...(comment ? { comment } : {}),
          ...(item.decision && item.decision !== body.decision ? { previous: item.decision } : {}),
        }),
      ]);
    });
    return this.get(caller, id);
  }

  async close(caller: Caller, id: string): Promise<AccessReview> {
    const read = await this.#readable(caller, id);
    if (!mayDecide(caller, JSON.parse(read.reviewers) as string[], this.deps.access))
      throw forbidden(`only the reviewers of ${id}, auditors and admins may close it`);
    const { db } = this.deps;
    const now = this.deps.clock.now();
    await this.#commit(async (tx) => {
      const row = await store.lockCampaign(tx, id, db.dialect === 'postgres');
      if (!row) throw notFound(`no access review ${id}`);
      if (row.state !== 'open') throw invalidState(`access review ${id} is already closed`);
      const items = await store.itemsOf(tx, id);
      const kept = items.filter((i) => i.decision === 'keep').length;
      const removed = items.filter((i) => i.decision === 'remove').length;
      await tx
        .updateTable('access_reviews')
        .set({ state: 'closed', closed_at: now, closed_by: whoJson(caller) })
        .where('id', '=', id)
        .execute();
      await appendAudit(tx, db.dialect, now, [
        this.#event('access_review.closed', row, who(caller), {
          items: items.length,
          kept,
          removed,
          undecided: items.length - kept - removed,
          edits: policyEdits(items, this.deps.policy.roles).map((e) => `${e.role}: ${e.change}`),
        }),
      ]);
    });
    return this.get(caller, id);
  }

  /**
   * Writes the reminders and overdue notices that are due (once each per campaign): the broker's
   * sweep calls this; the notification outbox routes the events to the reviewers.
   */
  async tick(): Promise<number> {
    const { db } = this.deps;
    const now = this.deps.clock.now();
    const due = await store.dueNotices(db.kysely, now);
    let written = 0;
    for (const candidate of due) {
      await this.#commit(async (tx) => {
        const row = await store.lockCampaign(tx, candidate.id, db.dialect === 'postgres');
        if (row?.state !== 'open') return;
        const progress = (await store.progressOf(tx, [row.id])).get(row.id);
        const undecided = (progress?.items ?? 0) - (progress?.kept ?? 0) - (progress?.removed ?? 0);
        const events: NewAuditEvent[] = [];
        const set: Partial<AccessReviewRow> = {};
        if (row.overdue_at === null && row.due_at < now) {
          events.push(this.#event('access_review.overdue', row, null, { undecided }));
          set.overdue_at = now;
          // An overdue notice says more than a reminder would; no reminder after it.
          if (row.reminded_at === null) set.reminded_at = now;
        } else if (row.reminded_at === null && row.remind_at <= now) {
          events.push(this.#event('access_review.reminder', row, null, { undecided }));
          set.reminded_at = now;
        }
        if (events.length === 0) return;
        await tx.updateTable('access_reviews').set(set).where('id', '=', row.id).execute();
        await appendAudit(tx, db.dialect, now, events);
        written += events.length;
      });
    }
    return written;
  }

  /**
   * The refusal of a filing that a removal in force covers (403 `access_removed`, naming the
   * campaign, who decided and why), or null. Asked before a request is filed; one indexed read
   * of the role's removals.
   */
  async refusal(caller: Caller, role: RolePolicy): Promise<HttpError | null> {
    const removals = await store.removalsOf(this.deps.db.kysely, role.name);
    if (removals.length === 0) return null;
    const hit = removalFor(role, caller, removals, this.deps.trustedIssuers);
    if (!hit) return null;
    let by = 'a reviewer';
    try {
      const w = JSON.parse(hit.decided_by ?? '') as Identity;
      by = w.name ?? w.sub;
    } catch {}
    const what = hit.kind === 'person' ? 'your access' : `${hit.subject}`;
    return new HttpError(
      403,
      ErrorCode.AccessRemoved,
      `access review ${hit.campaign_id} removed ${what} to ${role.name} (${by}, ${hit.decided_at ? day(hit.decided_at) : 'earlier'}${hit.comment ? `: ${hit.comment}` : ''})`,
      `this holds until roles.${role.name}.requesters changes in the policy; ask the reviewers of ${hit.campaign_id} or the policy's owners`,
    );
  }
}
