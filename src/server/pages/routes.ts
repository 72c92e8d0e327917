import type { FastifyInstance, FastifyReply } from 'fastify';
import { type AccessRequest, type Decision, LIMITS } from '../../api/schemas.js';
import type { ChainStatus } from '../audit/chain-watch.js';
import { readAudit } from '../audit/log.js';
import { HttpError } from '../errors.js';
import type { Caller } from '../policy/types.js';
import { field, type Pages, type Problem, problemOf, requestPath, stepUpOf } from './context.js';
import { lastTransition } from './history.js';
import { homeLifecycle, lifecycleRoutes } from './lifecycle-routes.js';
import { lifecyclePage, type Typed } from './lifecycle-view.js';
import { auditLine, listItem, requestView, timeText } from './present.js';
import { intentOn, type PageSession } from './sessions.js';

/**
 * The pages themselves: home (`/ui/`), a request (`/ui/requests/<id>`) with its review, revoke
 * and withdraw forms, and the audit log. Every decision is a call to the RequestService the API
 * uses, with the page's Caller; what it refuses is shown on the page with its message and hint.
 * A successful POST answers 303 to the request's page (post/redirect/get), which then says what
 * happened ("Approved by Lee Lead at 14:02 UTC").
 */

const isSelf = (r: AccessRequest, c: Pick<Caller, 'iss' | 'sub'>) =>
  r.requester.iss === c.iss && r.requester.sub === c.sub;

export function pageRoutes(app: FastifyInstance, pages: Pages, guards: unknown[]): void {
  const { service, clock, db } = pages.deps;
  const post = { preHandler: guards } as never;

  // ---- home ------------------------------------------------------------------------------------

  app.get('/', async (req, reply) => {
    const s = await pages.require(req, reply, '/ui/');
    if (!s) return reply;
    const me = s.caller;
    const now = clock.now();
    const reviewable = new Set(service.reviewableRoles(me));
    const admin = service.isAdmin(me);
    const review = await service.list(me, { reviewable: true, state: 'pending', limit: 50 });
    const mine = await service.list(me, { mine: true, limit: 20 });
    const active = await service.list(me, { state: 'approved', limit: 50 });
    const revocable = active.items.filter((r) => isSelf(r, me) || reviewable.has(r.role) || admin);
    const section = (
      items: AccessRequest[],
      more: boolean,
      empty: string,
      flags: { revocable?: boolean } = {},
    ) => ({
      items: items.map((r) => {
        const item = listItem(r, now);
        const mineReview = r.reviews.find(
          (x) => x.reviewer.iss === me.iss && x.reviewer.sub === me.sub,
        );
        return {
          ...item,
          detail: mineReview
            ? `you ${mineReview.decision === 'approve' ? 'approved' : 'denied'} it; ${item.detail}`
            : item.detail,
          revocable: flags.revocable === true,
        };
      }),
      more: more ? 'jitctl list' : null,
      empty,
    });
    let auditor: { tone: string; summary: string } | null = null;
    if (service.isAuditor(me)) {
      const chain = describeChain(await pages.deps.chain.status(), now);
      auditor = { tone: chain.tone, summary: chain.summary };
    }
    const life = await homeLifecycle(service, me, now);
    return pages.render(reply, 200, 'home.eta', 'Access requests', {
      life,
      review: section(
        review.items,
        review.nextBeforeSeq !== null,
        reviewable.size > 0
          ? 'Nothing waits for your review.'
          : 'You review no roles (the policy names no group of yours as approvers).',
      ),
      mine: section(mine.items, mine.nextBeforeSeq !== null, 'You have filed no requests.'),
      grants: section(
        revocable,
        active.nextBeforeSeq !== null,
        'No active grants you may revoke.',
        {
          revocable: true,
        },
      ),
      auditor,
    });
  });

  // ---- one request -----------------------------------------------------------------------------

  /** The request page, with an optional refusal to show and what the form should hold. */
  async function showRequest(
    reply: FastifyReply,
    s: PageSession,
    id: string,
    status: number,
    problem: Problem | null,
    typed?: Typed,
  ): Promise<FastifyReply> {
    let request: AccessRequest;
    try {
      request = (await service.get(s.caller, id)).request;
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return pages.message(
        reply,
        err.status,
        problem ? 'Nothing was recorded' : 'No such request',
        {
          problem: problem ?? problemOf(err),
          action: { href: pages.link('/ui/'), label: 'All requests' },
        },
      );
    }
    const now = clock.now();
    const me = s.caller;
    const role = service.policy.roles.get(request.role);
    const transition = request.state === 'pending' ? undefined : await lastTransition(db, id);
    const r = requestView(request, now, role?.description ?? null, transition);
    const mine = isSelf(request, me);
    const mayReview = service.reviewableRoles(me).includes(request.role);
    const reviewed = request.reviews.find(
      (x) => x.reviewer.iss === me.iss && x.reviewer.sub === me.sub,
    );
    const approvers = r.approvers.length > 0 ? r.approvers.join(' or ') : 'nobody';
    let note: string | null = null;
    let review: Record<string, unknown> | null = null;
    const intent = intentOn(s, request.id, 'request', now);
    const life = await lifecyclePage({
      request,
      role,
      session: s,
      now,
      mine,
      mayReview,
      db,
      typed,
    });
    if (request.state === 'pending') {
      if (mine) {
        note = `You filed this request, so you cannot review it. Ask ${life.whoMayApprove ?? approvers} to review it: send them this page's address.`;
      } else if (!mayReview) {
        note = `You may not review requests for role ${r.role}; its approvers are ${approvers}.`;
      } else if (reviewed) {
        const left = request.approvals_required - r.approvals;
        note = `You ${reviewed.decision === 'approve' ? 'approved' : 'denied'} this request at ${timeText(Date.parse(reviewed.at), now).text}${left > 0 && reviewed.decision === 'approve' ? `; it needs ${left} more ${left === 1 ? 'approval' : 'approvals'} from others` : ''}.`;
      } else {
        const first: Decision = intent?.decision === 'deny' ? 'deny' : 'approve';
        const label = (d: Decision) =>
          intent
            ? d === intent.decision
              ? `Confirm: ${d}`
              : `${d === 'approve' ? 'Approve' : 'Deny'} instead`
            : d === 'approve'
              ? 'Approve'
              : 'Deny';
        const order: Decision[] = first === 'approve' ? ['approve', 'deny'] : ['deny', 'approve'];
        review = {
          fingerprint: intent?.fingerprint ?? request.fingerprint,
          comment:
            ((typed?.target ?? 'request') === 'request' ? typed?.comment : undefined) ??
            intent?.comment ??
            '',
          maxComment: LIMITS.comment,
          buttons: order.map((d) => ({ value: d, label: label(d), className: d })),
        };
      }
    }
    const canRevoke =
      (request.state === 'approved' || request.state === 'scheduled') &&
      (mine || mayReview || service.isAdmin(me));
    return pages.render(reply, status, 'request.eta', `Request ${r.id}`, {
      r,
      href: encodeURIComponent(request.id),
      problem,
      confirm: review !== null && intent !== null,
      review,
      note,
      canRevoke,
      canCancel: (request.state === 'pending' || request.state === 'scheduled') && mine,
      life,
    });
  }

  app.get<{ Params: { id: string } }>('/requests/:id', async (req, reply) => {
    const s = await pages.require(req, reply, requestPath(req.params.id));
    if (!s) return reply;
    return showRequest(reply, s, req.params.id, 200, null);
  });

  app.post<{ Params: { id: string } }>('/requests/:id/review', post, async (req, reply) => {
    const s = req.pageSession!;
    const id = req.params.id;
    const decision = field(req, 'decision');
    const comment = (field(req, 'comment') ?? '').trim();
    const fingerprint = field(req, 'fingerprint');
    // Which form it came from (the request's, or the extension's); the service reviews what the
    // grant awaits, and the fingerprint makes sure that is what the person saw.
    const target = field(req, 'target') === 'extension' ? 'extension' : 'request';
    if (decision !== 'approve' && decision !== 'deny') {
      return showRequest(reply, s, id, 400, {
        message: 'Choose Approve or Deny.',
        hint: 'nothing was recorded',
      });
    }
    if (comment.length > LIMITS.comment) {
      return showRequest(
        reply,
        s,
        id,
        400,
        { message: `The comment is ${comment.length} characters; at most ${LIMITS.comment} fit.` },
        { target, comment: comment.slice(0, LIMITS.comment) },
      );
    }
    if (
      fingerprint === undefined ||
      fingerprint === '' ||
      fingerprint.length > LIMITS.fingerprint
    ) {
      return showRequest(reply, s, id, 400, {
        message: 'This form does not say which version of the request you reviewed.',
        hint: 'Reload the page, check the request, and decide again.',
      });
    }
    try {
      await service.review(s.caller, id, {
        decision,
        fingerprint,
        ...(comment ? { comment } : {}),
      });
    } catch (err) {
      const stepUp = stepUpOf(err);
      if (stepUp) {
        // Remember the decision, sign in again stronger, then show it again to confirm: the
        // return from the identity provider never decides anything by itself.
        await pages.deps.sessions.setIntent(s.idHash, {
          requestId: id,
          target,
          decision,
          comment,
          fingerprint,
          at: clock.now(),
        });
        return pages.toSignIn(reply, requestPath(id), stepUp);
      }
      if (err instanceof HttpError)
        return showRequest(reply, s, id, err.status, problemOf(err), { target, comment });
      throw err;
    }
    if (s.intent) await pages.deps.sessions.setIntent(s.idHash, null);
    return reply.redirect(pages.link(requestPath(id)), 303);
  });

  app.post<{ Params: { id: string } }>('/requests/:id/cancel', post, async (req, reply) => {
    const s = req.pageSession!;
    try {
      await service.cancel(s.caller, req.params.id);
    } catch (err) {
      if (err instanceof HttpError)
        return showRequest(reply, s, req.params.id, err.status, problemOf(err));
      throw err;
    }
    return reply.redirect(pages.link(requestPath(req.params.id)), 303);
  });

  app.get<{ Params: { id: string } }>('/requests/:id/revoke', async (req, reply) => {
    const id = req.params.id;
    const s = await pages.require(req, reply, requestPath(id));
    if (!s) return reply;
    let request: AccessRequest;
    try {
      request = (await service.get(s.caller, id)).request;
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return pages.message(reply, err.status, 'No such request', { problem: problemOf(err) });
    }
    if (request.state !== 'approved' && request.state !== 'scheduled') {
      return showRequest(reply, s, id, 409, {
        message: `This request is ${request.state}; only approved or scheduled requests can be revoked.`,
      });
    }
    const now = clock.now();
    return pages.render(reply, 200, 'revoke.eta', `Revoke ${id}`, {
      r: requestView(request, now, null, undefined),
      href: encodeURIComponent(id),
      maxReason: LIMITS.reason,
    });
  });

  app.post<{ Params: { id: string } }>('/requests/:id/revoke', post, async (req, reply) => {
    const s = req.pageSession!;
    // Cut to the limit the field declares; the API says what was wrong with anything else.
    const reason = (field(req, 'reason') ?? '').trim().slice(0, LIMITS.reason);
    try {
      await service.revoke(s.caller, req.params.id, reason || null);
    } catch (err) {
      if (err instanceof HttpError)
        return showRequest(reply, s, req.params.id, err.status, problemOf(err));
      throw err;
    }
    return reply.redirect(pages.link(requestPath(req.params.id)), 303);
  });

  lifecycleRoutes(app, pages, guards, showRequest);

  // ---- audit log -------------------------------------------------------------------------------

  const AUDIT_PAGE = 50;

  app.get('/audit', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const returnTo = typeof q.after === 'string' ? `/ui/audit?after=${q.after}` : '/ui/audit';
    const s = await pages.require(req, reply, returnTo);
    if (!s) return reply;
    if (!service.isAuditor(s.caller)) {
      const groups = pages.deps.auditors.map((g) => `group:${g}`).join(', ') || '(no group)';
      return pages.message(reply, 403, 'Only auditors read the audit log', {
        problem: { message: `Auditors are members of ${groups}.` },
        action: { href: pages.link('/ui/'), label: 'Back to your requests' },
      });
    }
    const headRow = await db.kysely.selectFrom('audit_head').select('seq').executeTakeFirst();
    const head = Number(headRow?.seq ?? 0);
    let after = Math.max(0, head - AUDIT_PAGE);
    if (q.after !== undefined) {
      if (typeof q.after !== 'string' || !/^\d{1,15}$/.test(q.after)) {
        return pages.message(reply, 400, 'Not a page of the audit log', {
          problem: { message: '`after` must be an event number, e.g. /ui/audit?after=100.' },
          action: { href: pages.link('/ui/audit'), label: 'The latest events' },
        });
      }
      after = Math.min(Number(q.after), head);
    }
    const events = await readAudit(db.kysely, after, AUDIT_PAGE);
    const chain = describeChain(await pages.deps.chain.status(), clock.now());
    return pages.render(reply, 200, 'audit.eta', 'Audit log', {
      chain,
      events: events.map(auditLine),
      head,
      from: events.length > 0 ? events[0]!.seq : after,
      to: events.length > 0 ? events[events.length - 1]!.seq : after,
      earlier: after > 0 ? Math.max(0, after - AUDIT_PAGE) : null,
      later: after + AUDIT_PAGE < head ? after + AUDIT_PAGE : null,
    });
  });
}

/** The chain's verdict in words, for the audit page and the auditor's home. */
export function describeChain(
  c: ChainStatus,
  now: number,
): { tone: string; summary: string; detail: string | null } {
  const n = (x: number) => x.toLocaleString('en-US');
  const when = (at: number) => `${timeText(at, now).text} (${timeText(at, now).relative})`;
  if (c.state === 'broken' && c.problem) {
    return {
      tone: 'broken',
      summary: `The hash chain is broken at event ${c.problem.seq}: ${c.problem.reason}.`,
      detail:
        'Someone changed, removed or added events outside the broker. Run `jitctl audit verify --db` and compare with your backups.',
    };
  }
  if (c.state === 'intact') {
    return {
      tone: 'approved',
      summary: `Hash chain intact: all ${n(c.headSeq)} events link up to the head.`,
      detail: c.verified ? `Walked from the first event; checked ${when(c.verified.at)}.` : null,
    };
  }
  const progress = `${n(c.walked)} of ${n(c.headSeq)} events verified so far`;
  return {
    tone: 'pending',
    summary: c.verified
      ? `Hash chain intact as of ${when(c.verified.at)} (${n(c.verified.events)} events); verifying again from the first event: ${progress}.`
      : `Verifying the hash chain: ${progress}; each visit verifies more.`,
    detail: 'Long logs are verified a part at a time, so a page never waits for all of it.',
  };
}
