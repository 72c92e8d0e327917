import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { AuditCheckpoint, AuditPage, MAX_WAIT_MS } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { readAudit } from '../audit/log.js';
import { badRequest, durationOf, forbidden, notFound } from '../errors.js';
import { requestContexts } from '../store/audit-stream.js';
import { queryOf, wholeNumber } from './input.js';

/**
 * The audit log for the auditors groups:
 * - `GET /v1/audit?after=SEQ&limit=N`: events in order. With `wait=30s` (at most 60 s) and nothing
 *   after SEQ yet, the answer waits until something is appended (`jitctl audit tail --follow`);
 *   with `with=requests`, the role and requester of the requests the page names (OCSF output).
 * - `GET /v1/audit/checkpoint`: the chain's head signed by the broker (src/api/audit-checkpoint.ts).
 */
export const auditRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  const mustAudit = (req: FastifyRequest) => {
    if (!deps.service.isAuditor(req.caller!)) {
      throw forbidden(
        'only auditors may read the audit log',
        `auditors are members of ${deps.auditors.map((g) => `group:${g}`).join(', ') || '(no group configured)'}`,
      );
    }
  };

  app.get('/v1/audit', { schema: { response: { 200: AuditPage } } }, async (req, reply) => {
    mustAudit(req);
    const q = queryOf(req, ['after', 'limit', 'wait', 'with']);
    const after =
      q.after === undefined ? 0 : wholeNumber(q.after, 'after', 0, Number.MAX_SAFE_INTEGER);
    const limit = q.limit === undefined ? 100 : wholeNumber(q.limit, 'limit', 1, 1000);
    const waitMs =
      q.wait === undefined
        ? undefined
        : Math.min(durationOf('wait', q.wait, 'e.g. wait=30s (at most 60s)'), MAX_WAIT_MS);
    if (q.with !== undefined && q.with !== 'requests')
      throw badRequest('`with` takes only `requests`', 'e.g. with=requests');

    let items = await readAudit(deps.db.kysely, after, limit + 1);
    if (items.length === 0 && waitMs !== undefined && waitMs > 0 && deps.audit) {
      // Stop waiting when the client goes away: its socket closes before we answer.
      const gone = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) gone.abort();
      };
      reply.raw.once('close', onClose);
      try {
        const outcome = await deps.audit.feed.wait(after, waitMs, gone.signal);
        if (outcome === 'aborted') return reply;
        if (outcome === 'appended') items = await readAudit(deps.db.kysely, after, limit + 1);
      } finally {
        reply.raw.off('close', onClose);
      }
    }
    const more = items.length > limit;
    const page = more ? items.slice(0, limit) : items;
    const body: AuditPage = { items: page, next_after: more ? page[page.length - 1]!.seq : null };
    if (q.with === 'requests') {
      const ids = page.flatMap((e) => (e.request_id ? [e.request_id] : []));
      body.requests = await requestContexts(deps.db.kysely, ids);
    }
    return body;
  });

  app.get(
    '/v1/audit/checkpoint',
    { schema: { response: { 200: AuditCheckpoint } } },
    async (req) => {
      mustAudit(req);
      queryOf(req, []);
      if (!deps.audit) throw notFound('checkpoints are not enabled');
      const checkpoint = await deps.audit.checkpoints.current();
      if (!checkpoint)
        throw notFound(
          'the audit log is empty: there is no head to sign yet',
          'ask again once something has happened',
        );
      return checkpoint;
    },
  );
};
