import type { FastifyPluginAsync } from 'fastify';
import {
  AccessReview,
  AccessReviewList,
  DecideAccessReviewBody,
  REPORT_FORMATS,
  type ReportFormat,
  StartAccessReviewBody,
} from '../../api/governance.js';
import type { AppDeps } from '../app-deps.js';
import { badRequest, forbidden } from '../errors.js';
import type { Governance } from '../governance/index.js';
import { emptyBody, queryOf } from './input.js';

/**
 * Governance's endpoints (docs/governance.md): the access report (`GET /v1/reports`, auditors and
 * admins) and access reviews (`/v1/access-reviews`). Both call the one Governance object the
 * auditors' pages call too.
 */
export const governanceRoutes: FastifyPluginAsync<{
  deps: AppDeps;
  governance: Governance;
}> = async (app, { deps, governance }) => {
  app.get('/v1/reports', async (req, reply) => {
    const caller = req.caller!;
    if (!governance.isAuditor(caller))
      throw forbidden(
        'only auditors and admins may read the access report',
        `auditors are members of ${deps.auditors.map((g) => `group:${g}`).join(', ') || '(no group configured)'}`,
      );
    const q = queryOf(req, ['since', 'role', 'frequent', 'format']);
    const format = (q.format ?? 'json') as ReportFormat;
    if (!REPORT_FORMATS.includes(format))
      throw badRequest(`\`format\` must be one of ${REPORT_FORMATS.join(', ')}`);
    const report = await governance.report({
      since: q.since,
      role: q.role,
      frequent: q.frequent,
    });
    if (format === 'json') return report;
    const { renderReport, REPORT_FILE_CSP } = await import('../governance/report/render.js');
    const out = renderReport(report, format);
    reply.header('content-type', out.contentType);
    if (format === 'html') reply.header('content-security-policy', REPORT_FILE_CSP);
    return reply.send(out.body);
  });

  app.get(
    '/v1/access-reviews',
    { schema: { response: { 200: AccessReviewList } } },
    async (req) => {
      const q = queryOf(req, ['state']);
      if (q.state !== undefined && q.state !== 'open' && q.state !== 'closed')
        throw badRequest('`state` must be open or closed');
      return governance.reviews.list(req.caller!, q.state);
    },
  );

  app.post<{ Body: StartAccessReviewBody }>(
    '/v1/access-reviews',
    { schema: { body: StartAccessReviewBody, response: { 201: AccessReview } } },
    async (req, reply) => {
      const campaign = await governance.reviews.start(req.caller!, req.body);
      return reply.code(201).send(campaign);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/access-reviews/:id',
    { schema: { response: { 200: AccessReview } } },
    async (req) => governance.reviews.get(req.caller!, req.params.id),
  );

  app.post<{ Params: { id: string }; Body: DecideAccessReviewBody }>(
    '/v1/access-reviews/:id/decisions',
    { schema: { body: DecideAccessReviewBody, response: { 200: AccessReview } } },
    async (req) => governance.reviews.decide(req.caller!, req.params.id, req.body),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/access-reviews/:id/close',
    { schema: { response: { 200: AccessReview } } },
    async (req) => {
      emptyBody(req);
      return governance.reviews.close(req.caller!, req.params.id);
    },
  );
};
