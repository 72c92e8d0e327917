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
      requestable: await deps.service.requestableNow(c),
      reviewable: deps.service.reviewableRoles(c),
      auditor: deps.service.isAuditor(c),
    };
  });

  app.get('/v1/roles', { schema: { response: { 200: RolesResponse } } }, async (req) => {
    const removed = await deps.service.removedFor(req.caller!);
    return {
      roles: [...deps.service.policy.roles.values()].map((r) => {
        const summary = roleSummary(r, req.caller!);
        const why = removed.get(r.name);
        return why === undefined
          ? summary
          : { ...summary, can_request: false, access_removed: why };
      }),
    };
  });
};
