import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  AccessRequest,
  BREAK_GLASS_FILTERS,
  type BreakGlassFilter,
  CreateRequestBody,
  Headers,
  LIMITS,
  MAX_WAIT_MS,
  REQUEST_STATES,
  RequestPage,
  type RequestState,
} from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { badRequest, durationOf } from '../errors.js';
import { nextDeadline } from '../requests/lifecycle/time.js';
import { etagOf } from '../requests/wire.js';
import { emptyBody, optionalTextBody, queryOf, wholeNumber } from './input.js';

/**
 * Requests: file one, list a page, read one (with a long poll), cancel, revoke.
 *
 * The long poll (`GET /v1/requests/:id?wait=30s`) answers as soon as the request's ETag differs
 * from `If-None-Match` (or from its ETag when the poll began), when the wait ends, or when the
 * request's own deadline passes (it is expired first, so the answer says `expired`). It always
 * answers 200 with the current request: a CLI needs the object either way, and a 304 would make
 * it keep a copy.
 */
export const requestRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  const { service } = deps;

  app.post(
    '/v1/requests',
    { schema: { body: CreateRequestBody, response: { 201: AccessRequest } } },
    async (req, reply) => {
      const key = idempotencyKey(req);
      const { request, replayed } = await service.create(
        req.caller!,
        req.body as CreateRequestBody,
        key,
      );
      reply.code(201).header('location', `/v1/requests/${request.id}`);
      if (replayed) reply.header('idempotent-replayed', 'true');
      return request;
    },
  );

  app.get('/v1/requests', { schema: { response: { 200: RequestPage } } }, async (req) => {
    const q = queryOf(req, ['state', 'mine', 'reviewable', 'cursor', 'limit', 'break_glass']);
    let state: RequestState | undefined;
    if (q.state !== undefined) {
      if (!(REQUEST_STATES as readonly string[]).includes(q.state))
        throw badRequest(
          `\`state\` ${JSON.stringify(q.state)} is not a request state`,
          `states: ${REQUEST_STATES.join(', ')}`,
        );
      state = q.state as RequestState;
    }
    const mine = flag(q.mine, 'mine');
    const reviewable = flag(q.reviewable, 'reviewable');
    if (mine && reviewable) throw badRequest('`mine` and `reviewable` cannot both be true');
    const limit = q.limit === undefined ? 50 : wholeNumber(q.limit, 'limit', 1, 200);
    const beforeSeq = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const breakGlass = breakGlassFilter(q.break_glass);
    const page = await service.list(req.caller!, {
      ...(state ? { state } : {}),
      ...(breakGlass ? { breakGlass } : {}),
      mine,
      reviewable,
      ...(beforeSeq !== undefined ? { beforeSeq } : {}),
      limit,
    });
    return {
      items: page.items,
      next_cursor: page.nextBeforeSeq === null ? null : encodeCursor(page.nextBeforeSeq),
    };
  });

  app.get<{ Params: { id: string } }>(
    '/v1/requests/:id',
    { schema: { response: { 200: AccessRequest } } },
    async (req, reply) => {
      const q = queryOf(req, ['wait']);
      const waitMs =
        q.wait === undefined
          ? undefined
          : Math.min(durationOf('wait', q.wait, 'e.g. wait=30s (at most 60s)'), MAX_WAIT_MS);
      if (waitMs === undefined) {
        const first = await service.get(req.caller!, req.params.id);
        return answer(reply, first.request, first.etag);
      }
      // Watch before the first read, so a change committed between that read and the wait wakes
      // this poll instead of being missed (it would otherwise sleep for the whole wait).
      const watch = deps.hub.watch(req.params.id);
      // Stop waiting when the client goes away: its socket closes before we answer.
      const gone = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) gone.abort();
      };
      reply.raw.once('close', onClose);
      try {
        const first = await service.get(req.caller!, req.params.id);
        const ifNoneMatch = parseIfNoneMatch(req.headers['if-none-match']);
        const unchanged = (etag: string) =>
          ifNoneMatch
            ? ifNoneMatch.includes(etag) || ifNoneMatch.includes('*')
            : etag === first.etag;
        if (!unchanged(first.etag)) return answer(reply, first.request, first.etag);
        const deadline = Date.now() + waitMs;
        let row = first.row;
        for (;;) {
          const left = deadline - Date.now();
          if (left <= 0) break;
          // Wake at the request's own deadline too, so a lapse is reported when it happens.
          const next = nextDeadline(row);
          const untilDue =
            next === null ? Number.POSITIVE_INFINITY : Math.max(0, next - deps.clock.now()) + 5;
          const outcome = await watch.next(Math.min(left, untilDue), gone.signal);
          if (outcome === 'aborted') return reply;
          const fresh = await service.peek(row.id);
          if (!fresh) break;
          row = fresh;
          if (!unchanged(etagOf(row)) || outcome === 'closed') break;
        }
      } finally {
        watch.close();
        reply.raw.off('close', onClose);
      }
      const latest = await service.get(req.caller!, req.params.id);
      return answer(reply, latest.request, latest.etag);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/requests/:id/cancel',
    { schema: { response: { 200: AccessRequest } } },
    async (req) => {
      emptyBody(req);
      return service.cancel(req.caller!, req.params.id);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/requests/:id/revoke',
    { schema: { response: { 200: AccessRequest } } },
    async (req) => {
      // An optional reason, shown to the requester's running command and to relying parties.
      const { reason } = optionalTextBody(req, { reason: LIMITS.reason });
      return service.revoke(req.caller!, req.params.id, reason);
    },
  );
};

function breakGlassFilter(value: string | undefined): BreakGlassFilter | undefined {
  if (value === undefined) return undefined;
  if ((BREAK_GLASS_FILTERS as readonly string[]).includes(value)) return value as BreakGlassFilter;
  throw badRequest(
    `\`break_glass\` ${JSON.stringify(value.slice(0, 40))} is not a filter`,
    `filters: ${BREAK_GLASS_FILTERS.join(', ')}`,
  );
}

function answer(reply: FastifyReply, request: AccessRequest, etag: string) {
  return reply.header('etag', etag).send(request);
}

function flag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw badRequest(`\`${name}\` must be true or false`);
}

/** Opaque to clients; today the seq of the last item of the previous page. */
function encodeCursor(seq: number): string {
  return Buffer.from(`v1:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const m = /^v1:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || cursor.length > 40)
    throw badRequest(
      '`cursor` is not one this broker handed out',
      'pass `next_cursor` from the previous page as is',
    );
  return Number(m[1]);
}

/** RFC 9110 §13.1.2: a list of entity tags, or `*`. Weak tags compare by their opaque part. */
export function parseIfNoneMatch(header: string | string[] | undefined): string[] | undefined {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return undefined;
  return text
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .filter(Boolean);
}

function idempotencyKey(req: FastifyRequest): string | undefined {
  const value = req.headers[Headers.idempotencyKey];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw badRequest('send one Idempotency-Key header');
  if (value.length === 0 || value.length > LIMITS.idempotencyKey || !/^[\x21-\x7e]+$/.test(value))
    throw badRequest(
      `Idempotency-Key must be 1 to ${LIMITS.idempotencyKey} printable ASCII characters`,
      'a random UUID is a good key',
    );
  return value;
}
