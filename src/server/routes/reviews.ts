import type { FastifyPluginAsync } from 'fastify';
import { AccessRequest, ReviewBody } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';

/** `POST /v1/requests/:id/reviews`: approve or deny (fresh strong sign-in required, RFC 9470). */
export const reviewRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post<{ Params: { id: string }; Body: ReviewBody }>(
    '/v1/requests/:id/reviews',
    { schema: { body: ReviewBody, response: { 200: AccessRequest } } },
    async (req) => deps.service.review(req.caller!, req.params.id, req.body),
  );
};
