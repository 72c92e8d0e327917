import type { FastifyPluginAsync } from 'fastify';
import { CredentialResponse } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { emptyBody } from './input.js';

/**
 * `POST /v1/requests/:id/credential`: a fresh signed credential for the requester of an approved
 * request. POST, not GET: each call mints (and audits) a new token, and nothing should cache it.
 */
export const credentialRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post<{ Params: { id: string } }>(
    '/v1/requests/:id/credential',
    { schema: { response: { 200: CredentialResponse } } },
    async (req, reply) => {
      emptyBody(req);
      const credential = await deps.service.mint(req.caller!, req.params.id);
      reply.header('pragma', 'no-cache');
      return credential;
    },
  );
};
