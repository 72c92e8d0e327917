import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { REPORT_FORMATS, type Report, type ReportFormat } from '../../api/governance.js';
import { HttpError } from '../errors.js';
import type { Governance } from '../governance/index.js';
import { reportDocument } from '../governance/report/document.js';
import { REPORT_FILE_CSP, renderReport } from '../governance/report/render.js';
import type { Caller } from '../policy/types.js';
import { type Pages, type Problem, problemOf, stepUpOf } from './context.js';

/**
 * The auditors' governance pages: the access report with its downloads (`/ui/reports`), access
 * reviews (`/ui/access-reviews`) and one campaign with a keep/remove form per item. Every figure
 * and every decision comes from the Governance object the API uses; a refusal is shown on the
 * page with its message and hint.
 */

const reviewPath = (id: string) => `/ui/access-reviews/${encodeURIComponent(id)}`;

function field(req: FastifyRequest, name: string): string | undefined {
  const body = req.body as Record<string, unknown> | null | undefined;
  const v = body && typeof body === 'object' ? body[name] : undefined;
  return typeof v === 'string' ? v : undefined;
}

function query(req: FastifyRequest, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name];
  return typeof v === 'string' && v !== '' ? v.slice(0, 200) : undefined;
}

const list = (text: string | undefined) =>
  (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

export function governancePageRoutes(
  app: FastifyInstance,
  pages: Pages,
  guards: unknown[],
  governance: Governance,
): void {
  const post = { preHandler: guards } as never;
  const auditorOnly = (reply: FastifyReply, me: Caller) => {
    if (governance.isAuditor(me)) return false;
    const groups = pages.deps.auditors.map((g) => `group:${g}`).join(', ') || '(no group)';
    pages.message(reply, 403, 'Only auditors and admins read the access report', {
      problem: { message: `Auditors are members of ${groups}.` },
      action: { href: pages.link('/ui/'), label: 'Back to your requests' },
    });
    return true;
  };

  // ---- the report ------------------------------------------------------------------------------

  app.get('/reports', async (req, reply) => {
    const since = query(req, 'since') ?? '30d';
    const role = query(req, 'role');
    const back = `/ui/reports?since=${encodeURIComponent(since)}${role ? `&role=${encodeURIComponent(role)}` : ''}`;
    const s = await pages.require(req, reply, back);
    if (!s) return reply;
    if (auditorOnly(reply, s.caller)) return reply;
    const roles = [...governance.deps.policy.roles.keys()].sort();
    let report: Report | null = null;
    let problem: Problem | null = null;
    try {
      report = await governance.report({ since, role });
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      problem = problemOf(err);
    }
    const params = `since=${encodeURIComponent(since)}${role ? `&role=${encodeURIComponent(role)}` : ''}`;
    return pages.render(reply, problem ? 400 : 200, 'reports.eta', 'Access report', {
      since,
      role: role ?? '',
      roles,
      problem,
      doc: report ? reportDocument(report) : null,
      downloads: (['html', 'csv', 'json', 'md', 'text'] as const).map((f) => ({
        label: f === 'html' ? 'HTML (one file, works offline)' : f.toUpperCase(),
        href: pages.link(`/ui/reports/download?format=${f}&${params}`),
      })),
    });
  });

  app.get('/reports/download', async (req, reply) => {
    const s = await pages.require(req, reply, '/ui/reports');
    if (!s) return reply;
    if (auditorOnly(reply, s.caller)) return reply;
    const format = (query(req, 'format') ?? 'html') as ReportFormat;
    if (!REPORT_FORMATS.includes(format))
      return pages.message(reply, 400, 'No such format', {
        problem: { message: `Reports come as ${REPORT_FORMATS.join(', ')}.` },
        action: { href: pages.link('/ui/reports'), label: 'The access report' },
      });
    let report: Report;
    try {
      report = await governance.report({
        since: query(req, 'since'),
        role: query(req, 'role'),
      });
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return pages.message(reply, err.status, 'No report', { problem: problemOf(err) });
    }
    const out = renderReport(report, format);
    // The file's own policy: its inline stylesheet and nothing else (it is a download).
    if (format === 'html') reply.header('content-security-policy', REPORT_FILE_CSP);
    return reply
      .header('content-type', out.contentType)
      .header('content-disposition', `attachment; filename="${out.filename}"`)
      .send(out.body);
  });

  // ---- access reviews --------------------------------------------------------------------------

  async function showList(
    reply: FastifyReply,
    me: Caller,
    status = 200,
    problem: Problem | null = null,
    form = { roles: '', reviewers: '', due: '14d', title: '' },
  ) {
    const { items } = await governance.reviews.list(me);
    return pages.render(reply, status, 'access-reviews.eta', 'Access reviews', {
      campaigns: items,
      canStart: governance.isAuditor(me),
      problem,
      form,
    });
  }

  app.get('/access-reviews', async (req, reply) => {
    const s = await pages.require(req, reply, '/ui/access-reviews');
    if (!s) return reply;
    return showList(reply, s.caller);
  });

  app.post('/access-reviews', post, async (req, reply) => {
    const s = req.pageSession!;
    const form = {
      roles: field(req, 'roles') ?? '',
      reviewers: field(req, 'reviewers') ?? '',
      due: field(req, 'due') ?? '14d',
      title: field(req, 'title') ?? '',
    };
    const roles = list(form.roles);
    try {
      const c = await governance.reviews.start(s.caller, {
        ...(roles.length === 1 && roles[0] === '*' ? { all: true } : { roles }),
        reviewers: list(form.reviewers),
        due: form.due.trim(),
        ...(form.title.trim() ? { title: form.title.trim().slice(0, 200) } : {}),
      });
      return reply.redirect(pages.link(reviewPath(c.id)), 303);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return showList(reply, s.caller, err.status, problemOf(err), form);
    }
  });

  async function showReview(
    reply: FastifyReply,
    me: Caller,
    id: string,
    status = 200,
    problem: Problem | null = null,
  ) {
    try {
      const c = await governance.reviews.get(me, id);
      return pages.render(reply, status, 'access-review.eta', `Access review ${c.id}`, {
        c: { ...c, items: c.items ?? [], edits: c.edits ?? [] },
        problem,
      });
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return pages.message(reply, err.status, 'No such access review', {
        problem: problemOf(err),
        action: { href: pages.link('/ui/access-reviews'), label: 'All access reviews' },
      });
    }
  }

  app.get<{ Params: { id: string } }>('/access-reviews/:id', async (req, reply) => {
    const s = await pages.require(req, reply, reviewPath(req.params.id));
    if (!s) return reply;
    return showReview(reply, s.caller, req.params.id);
  });

  app.post<{ Params: { id: string } }>('/access-reviews/:id/decide', post, async (req, reply) => {
    const s = req.pageSession!;
    const id = req.params.id;
    const item = Number(field(req, 'item'));
    const decision = field(req, 'decision');
    if (!Number.isInteger(item) || item < 1 || (decision !== 'keep' && decision !== 'remove'))
      return showReview(reply, s.caller, id, 400, {
        message: 'Choose Keep or Remove on one item.',
      });
    const comment = field(req, 'comment')?.slice(0, 1000);
    try {
      await governance.reviews.decide(s.caller, id, {
        item,
        decision,
        ...(comment ? { comment } : {}),
      });
    } catch (err) {
      // A decision is a review: sign in again with the second factor, then decide again (the
      // return from the identity provider decides nothing by itself).
      const stepUp = stepUpOf(err);
      if (stepUp) return pages.toSignIn(reply, reviewPath(id), stepUp);
      if (!(err instanceof HttpError)) throw err;
      return showReview(reply, s.caller, id, err.status, problemOf(err));
    }
    return reply.redirect(pages.link(`${reviewPath(id)}#item-${item}`), 303);
  });

  app.post<{ Params: { id: string } }>('/access-reviews/:id/close', post, async (req, reply) => {
    const s = req.pageSession!;
    try {
      await governance.reviews.close(s.caller, req.params.id);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return showReview(reply, s.caller, req.params.id, err.status, problemOf(err));
    }
    return reply.redirect(pages.link(reviewPath(req.params.id)), 303);
  });
}
