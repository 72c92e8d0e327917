import type { FastifyPluginAsync } from 'fastify';
import { UseRecorded, UseReport } from '../../api/grant.js';
import type { AppDeps } from '../app-deps.js';
import { recordUse } from '../uses/record.js';

/**
 * `POST /v1/requests/:id/uses`: the requester's `jitctl exec`/`shell` reports a command run under
 * the grant (its start, then its end), audited as `command.started` / `command.ended`
 * (src/server/uses/record.ts). 201 when recorded, 200 `recorded: false` when it already was.
 */
export const useRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post<{ Params: { id: string }; Body: UseReport }>(
    '/v1/requests/:id/uses',
    { schema: { body: UseReport, response: { 200: UseRecorded, 201: UseRecorded } } },
    async (req, reply) => {
      const result = await recordUse(
        {
          db: deps.db,
          clock: deps.clock,
          metrics: deps.metrics,
          policy: deps.service.policy,
        },
        req.caller!,
        req.params.id,
        req.body,
      );
      return reply.code(result.recorded ? 201 : 200).send(result);
    },
  );
};
