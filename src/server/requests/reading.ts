import type { AccessRequest } from '../../api/schemas.js';
import type { Caller } from '../policy/types.js';
import { getReviews, getReviewsOf, listRequests } from '../store/requests.js';
import type { RequestRow } from '../store/schema.js';
import type { RequestCore } from './core.js';
import type { RequestQuery } from './types.js';
import { etagOf, toWire } from './wire.js';

/** Reading requests: one (brought up to date with time first), a page. */

export async function getRequestFor(
  core: RequestCore,
  caller: Caller,
  id: string,
): Promise<{ request: AccessRequest; etag: string; row: RequestRow }> {
  const row = await core.visible(caller, id);
  const fresh = await core.settle(row);
  const reviews = await getReviews(core.deps.db.kysely, id);
  return { request: toWire(fresh, reviews), etag: etagOf(fresh), row: fresh };
}

export async function listFor(
  core: RequestCore,
  caller: Caller,
  q: RequestQuery,
  reviewableRoles: string[],
): Promise<{ items: AccessRequest[]; nextBeforeSeq: number | null }> {
  const db = core.deps.db.kysely;
  const self = { iss: caller.iss, sub: caller.sub };
  const seesAll = core.isAdmin(caller) || core.isAuditor(caller);
  const base = {
    ...(q.state ? { state: q.state } : {}),
    ...(q.breakGlass ? { breakGlass: q.breakGlass } : {}),
    ...(q.extensionPending ? { extensionPending: true } : {}),
    ...(q.beforeSeq !== undefined ? { beforeSeq: q.beforeSeq } : {}),
    limit: q.limit + 1,
  };
  let rows: RequestRow[];
  if (q.mine) {
    rows = await listRequests(db, { ...base, requester: self });
  } else if (q.reviewable) {
    rows = await listRequests(db, {
      ...base,
      roles: reviewableRoles,
      rolesOnly: true,
      self,
      excludeSelf: true,
    });
  } else {
    rows = await listRequests(db, {
      ...base,
      ...(seesAll ? {} : { roles: reviewableRoles, self }),
    });
  }
  const more = rows.length > q.limit;
  const page = more ? rows.slice(0, q.limit) : rows;
  const reviews = await getReviewsOf(
    db,
    page.map((r) => r.id),
  );
  return {
    items: page.map((r) => toWire(r, reviews.get(r.id) ?? [])),
    nextBeforeSeq: more ? page[page.length - 1]!.seq : null,
  };
}
