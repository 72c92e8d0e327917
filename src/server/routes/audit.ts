import type { FastifyPluginAsync } from 'fastify';
import { AuditPage } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { readAudit } from '../audit/log.js';
import { forbidden } from '../errors.js';
import { queryOf, wholeNumber } from './input.js';

/** `GET /v1/audit?after=SEQ&limit=N`: the hash-chained log in order, for the auditors groups. */
export const auditRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/v1/audit', { schema: { response: { 200: AuditPage } } }, async (req) => {
    const caller = req.caller!;
    if (!deps.service.isAuditor(caller)) {
      throw forbidden(
        'only auditors may read the audit log',
        `auditors are members of ${deps.auditors.map((g) => `group:${g}`).join(', ') || '(no group configured)'}`,
      );
    }
    const q = queryOf(req, ['after', 'limit']);
    const after =
      q.after === undefined ? 0 : wholeNumber(q.after, 'after', 0, Number.MAX_SAFE_INTEGER);
    const limit = q.limit === undefined ? 100 : wholeNumber(q.limit, 'limit', 1, 1000);
    const items = await readAudit(deps.db.kysely, after, limit + 1);
    const more = items.length > limit;
    const page = more ? items.slice(0, limit) : items;
    return { items: page, next_after: more ? page[page.length - 1]!.seq : null };
  });
};
