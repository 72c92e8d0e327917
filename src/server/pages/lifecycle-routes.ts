import type { FastifyInstance, FastifyReply } from 'fastify';
import { type AccessRequest, LIMITS } from '../../api/schemas.js';
import { HttpError } from '../errors.js';
import type { Caller } from '../policy/types.js';
import type { RequestService } from '../requests/service.js';
import { field, type Pages, type Problem, problemOf, requestPath, stepUpOf } from './context.js';
import { EXTEND_LIMITS, type Typed } from './lifecycle-view.js';
import { type ListItem, listItem, timeText } from './present.js';
import type { PageSession, ReviewIntent } from './sessions.js';

/**
 * The lifecycle's forms and lists on the pages: an approver acknowledges or flags a break-glass
 * grant (`POST /ui/requests/:id/break-glass`), the requester asks for more time on their live
 * grant (`POST /ui/requests/:id/extend`), and the home page's break-glass to review, extensions
 * waiting for review and scheduled grants. An extension is reviewed through the request's own
 * review form (routes.ts): the service reviews whatever the grant awaits, and the fingerprint
 * makes sure it is the extension the approver saw.
 *
 * Each POST is the pattern of a review: the same guards (same-origin form, live session, CSRF),
 * one RequestService call with the page's Caller, 303 back to the request on success; a step-up
 * challenge remembers the decision, sends the person to sign in again and shows it again to
 * confirm; a refusal is the page with the service's message and the form as typed.
 */

/** Renders the request page with a problem and the typed form (routes.ts `showRequest`). */
export type ShowRequest = (
  reply: FastifyReply,
  s: PageSession,
  id: string,
  status: number,
  problem: Problem | null,
  typed?: Typed,
) => Promise<FastifyReply>;

const tooLong = (what: string, n: number, max: number): Problem => ({
  message: `The ${what} is ${n} characters; at most ${max} fit.`,
  hint: 'nothing was recorded',
});

export function lifecycleRoutes(
  app: FastifyInstance,
  pages: Pages,
  guards: unknown[],
  show: ShowRequest,
): void {
  const { service, clock, sessions } = pages.deps;
  const post = { preHandler: guards } as never;

  /** One decision through the service, with the step-up and refusal handling of a review. */
  async function decide(
    reply: FastifyReply,
    s: PageSession,
    intent: Omit<ReviewIntent, 'at'>,
    typed: Typed,
    call: () => Promise<unknown>,
  ): Promise<FastifyReply> {
    const id = intent.requestId;
    try {
      await call();
    } catch (err) {
      const stepUp = stepUpOf(err);
      if (stepUp) {
        await sessions.setIntent(s.idHash, { ...intent, at: clock.now() });
        return pages.toSignIn(reply, requestPath(id), stepUp);
      }
      if (err instanceof HttpError) return show(reply, s, id, err.status, problemOf(err), typed);
      throw err;
    }
    if (s.intent) await sessions.setIntent(s.idHash, null);
    return reply.redirect(pages.link(requestPath(id)), 303);
  }

  app.post<{ Params: { id: string } }>('/requests/:id/break-glass', post, async (req, reply) => {
    const s = req.pageSession!;
    const id = req.params.id;
    const verdict = field(req, 'verdict');
    const comment = (field(req, 'comment') ?? '').trim();
    const typed: Typed = { target: 'break-glass', comment };
    if (verdict !== 'acknowledge' && verdict !== 'flag') {
      return show(reply, s, id, 400, {
        message: 'Choose Acknowledge or Flag.',
        hint: 'nothing was recorded',
      });
    }
    if (comment.length > LIMITS.comment) {
      return show(reply, s, id, 400, tooLong('comment', comment.length, LIMITS.comment), {
        ...typed,
        comment: comment.slice(0, LIMITS.comment),
      });
    }
    const intent = { requestId: id, target: 'break-glass', decision: verdict, comment } as const;
    return decide(reply, s, { ...intent, fingerprint: '' }, typed, () =>
      service.acknowledgeBreakGlass(s.caller, id, { verdict, ...(comment ? { comment } : {}) }),
    );
  });

  app.post<{ Params: { id: string } }>('/requests/:id/extend', post, async (req, reply) => {
    const s = req.pageSession!;
    const id = req.params.id;
    const duration = (field(req, 'duration') ?? '').trim();
    const reason = (field(req, 'reason') ?? '').trim();
    const typed: Typed = { target: 'extend', duration, comment: reason };
    if (duration === '') {
      return show(
        reply,
        s,
        id,
        400,
        { message: 'Say how much longer you need, e.g. 30m or 1h.', hint: 'nothing was asked' },
        typed,
      );
    }
    if (duration.length > EXTEND_LIMITS.duration) {
      return show(reply, s, id, 400, tooLong('duration', duration.length, EXTEND_LIMITS.duration), {
        ...typed,
        duration: '',
      });
    }
    if (reason.length > EXTEND_LIMITS.reason) {
      return show(reply, s, id, 400, tooLong('reason', reason.length, EXTEND_LIMITS.reason), {
        ...typed,
        comment: reason.slice(0, EXTEND_LIMITS.reason),
      });
    }
    const intent = {
      requestId: id,
      target: 'extend',
      decision: 'extend',
      comment: reason,
    } as const;
    return decide(reply, s, { ...intent, duration, fingerprint: '' }, typed, () =>
      service.extend(s.caller, id, { duration, ...(reason ? { reason } : {}) }),
    );
  });
}

/** A list of the home page (list.eta). */
interface Section {
  items: (ListItem & { revocable: boolean })[];
  more: string | null;
  empty: string;
}

const reviewedBy = (reviews: AccessRequest['reviews'], me: Caller) =>
  reviews.find((x) => x.reviewer.iss === me.iss && x.reviewer.sub === me.sub);

/**
 * The home page's lifecycle lists: break-glass grants to review (overdue first) and extensions
 * waiting for review, for approvers; scheduled grants the person may see (theirs, their roles').
 */
export async function homeLifecycle(
  service: RequestService,
  me: Caller,
  now: number,
): Promise<{ breakGlass: Section | null; extensions: Section | null; scheduled: Section }> {
  const reviewable = new Set(service.reviewableRoles(me));
  const admin = service.isAdmin(me);
  const section = (
    items: AccessRequest[],
    more: string | null,
    empty: string,
    detail: (r: AccessRequest, item: ListItem) => string,
    revocable: (r: AccessRequest) => boolean = () => false,
  ): Section => ({
    items: items.map((r) => {
      const item = listItem(r, now);
      return { ...item, detail: detail(r, item), revocable: revocable(r) };
    }),
    more,
    empty,
  });
  let breakGlass: Section | null = null;
  let extensions: Section | null = null;
  if (reviewable.size > 0) {
    const [overdue, unreviewed, waiting] = await Promise.all([
      service.list(me, { reviewable: true, breakGlass: 'overdue', limit: 50 }),
      service.list(me, { reviewable: true, breakGlass: 'unreviewed', limit: 50 }),
      service.list(me, { reviewable: true, extensionPending: true, limit: 50 }),
    ]);
    const seen = new Set(overdue.items.map((r) => r.id));
    const items = [...overdue.items, ...unreviewed.items.filter((r) => !seen.has(r.id))];
    breakGlass = section(
      items,
      unreviewed.nextBeforeSeq !== null ? 'jitctl list --break-glass unreviewed' : null,
      'No break-glass use waits for your review.',
      (r, item) => {
        const due = r.break_glass ? timeText(Date.parse(r.break_glass.review_by), now) : null;
        const when = due
          ? r.break_glass?.overdue
            ? `review was due ${due.text} (${due.relative})`
            : `review by ${due.text} (${due.relative})`
          : '';
        return [when, item.detail].filter(Boolean).join('; ');
      },
    );
    extensions = section(
      waiting.items,
      waiting.nextBeforeSeq !== null ? 'jitctl list' : null,
      'No extension waits for your review.',
      (r, item) => {
        const mine = r.extension ? reviewedBy(r.extension.reviews, me) : undefined;
        const done = mine ? `you ${mine.decision === 'approve' ? 'approved' : 'denied'} it; ` : '';
        return `${done}${item.detail}`;
      },
    );
  }
  const scheduled = await service.list(me, { state: 'scheduled', limit: 50 });
  return {
    breakGlass,
    extensions,
    scheduled: section(
      scheduled.items,
      scheduled.nextBeforeSeq !== null ? 'jitctl list --state scheduled' : null,
      'No scheduled grants.',
      (_r, item) => item.detail,
      (r) =>
        reviewable.has(r.role) ||
        admin ||
        (r.requester.iss === me.iss && r.requester.sub === me.sub),
    ),
  };
}
