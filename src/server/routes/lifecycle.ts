import type { FastifyPluginAsync } from 'fastify';
import { AccessRequest, BreakGlassReviewBody, ExtendBody } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';

/**
 * The lifecycle's own endpoints: extending a live grant, and the review after the fact of a
 * break-glass grant. Reviews of an extension go to `POST /v1/requests/:id/reviews` like any review.
 */
export const lifecycleRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post<{ Params: { id: string }; Body: ExtendBody }>(
    '/v1/requests/:id/extend',
    { schema: { body: ExtendBody, response: { 200: AccessRequest } } },
    async (req) => deps.service.extend(req.caller!, req.params.id, req.body),
  );

  app.post<{ Params: { id: string }; Body: BreakGlassReviewBody }>(
    '/v1/requests/:id/break-glass-review',
    { schema: { body: BreakGlassReviewBody, response: { 200: AccessRequest } } },
    async (req) => deps.service.acknowledgeBreakGlass(req.caller!, req.params.id, req.body),
  );
};
