import type { FastifyPluginAsync } from 'fastify';
import { ErrorCode } from '../../api/errors.js';
import type { AppDeps } from '../app-deps.js';
import { HttpError } from '../errors.js';

/**
 * Operators' endpoints. `/healthz` says the process answers (restart it if not); `/readyz` says it
 * can serve (database reachable and migrated: take it out of the load balancer if not);
 * `/metrics` is Prometheus text. None needs a token and none shows anything secret.
 */
export const healthRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (req, reply) => {
    let ok = false;
    try {
      ok = await deps.ready();
    } catch (err) {
      req.log.warn({ err }, 'readiness check failed');
    }
    if (!ok) {
      return reply
        .code(503)
        .send(
          new HttpError(
            503,
            ErrorCode.Unavailable,
            'not ready: the database is unreachable or not migrated',
          ).toBody(),
        );
    }
    // Audit sinks: shown always; failing readiness only past a sink's own max_lag.
    const sinks = deps.audit?.sinks() ?? [];
    const behind = sinks.filter(
      (s) => s.max_lag_seconds !== null && s.lag_seconds > s.max_lag_seconds,
    );
    if (behind.length > 0) {
      const body = new HttpError(
        503,
        ErrorCode.Unavailable,
        `not ready: ${behind.map((s) => `audit sink ${s.name} is ${s.lag_seconds} s behind (max_lag ${s.max_lag_seconds} s)`).join('; ')}`,
      ).toBody();
      return reply.code(503).send({ ...body, audit_sinks: sinks });
    }
    return { status: 'ready', ...(sinks.length > 0 ? { audit_sinks: sinks } : {}) };
  });

  app.get('/metrics', async (_req, reply) => {
    return reply
      .header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
      .send(deps.metrics.render());
  });
};
