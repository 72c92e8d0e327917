import type { FastifyPluginAsync } from 'fastify';
import { MeResponse, RolesResponse } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { roleSummary } from '../policy/index.js';

/** Who the caller is, and what policy lets them do. */
export const identityRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/v1/me', { schema: { response: { 200: MeResponse } } }, async (req) => {
    const c = req.caller!;
    return {
      iss: c.iss,
      sub: c.sub,
      name: c.name,
      email: c.email,
      groups: c.groups,
      requestable: deps.service.requestableRoles(c),
      reviewable: deps.service.reviewableRoles(c),
      auditor: deps.service.isAuditor(c),
    };
  });

  app.get('/v1/roles', { schema: { response: { 200: RolesResponse } } }, async (req) => ({
    roles: [...deps.service.policy.roles.values()].map((r) => roleSummary(r, req.caller!)),
  }));
};
