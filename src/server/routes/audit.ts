import type { FastifyPluginAsync } from 'fastify';
import { AuditPage } from '../../api/schemas.js';
import type { AppDeps } from '../app.js';
import { readAudit } from '../audit/log.js';
import { badRequest, forbidden } from '../errors.js';
import { queryOf } from './input.js';

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

function wholeNumber(text: string, name: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(text) || Number(text) < min || Number(text) > max)
    throw badRequest(
      `\`${name}\` must be a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'the last event' : max}`,
    );
  return Number(text);
}
