import { forbidden, notFound } from '../errors.js';
import { canReview } from '../policy/principal.js';
import type { Caller, RolePolicy } from '../policy/types.js';
import { getRequest } from '../store/requests.js';
import type { RequestRow } from '../store/schema.js';
import { REQUEST_ID_PATTERN } from './ids.js';
import { isDue, isRequester, type Who, whoIs } from './lifecycle/index.js';
import type { ServiceDeps } from './types.js';
import { RequestWriter, type Written } from './writer.js';

/**
 * What every part of the request service shares: its dependencies, the writer, and loading a
 * request (by id, as a caller may see it, brought up to date with time).
 */
export class RequestCore {
  readonly writer: RequestWriter;

  constructor(readonly deps: ServiceDeps) {
    this.writer = new RequestWriter(deps);
  }

  now(): number {
    return this.deps.clock.now();
  }

  role(name: string): RolePolicy | undefined {
    return this.deps.policy.roles.get(name);
  }

  isAdmin(c: Caller): boolean {
    return c.groups.some((g) => this.deps.access.admins.includes(g));
  }

  isAuditor(c: Caller): boolean {
    return c.groups.some((g) => this.deps.access.auditors.includes(g));
  }

  who(row: RequestRow, caller: Caller): Who {
    return whoIs(row, caller, this.role(row.role), this.isAdmin(caller));
  }

  async load(id: string): Promise<RequestRow> {
    if (!REQUEST_ID_PATTERN.test(id))
      throw notFound(`no request ${JSON.stringify(id)}`, 'request ids look like req_7Hq2Xn4pQr9a');
    const row = await getRequest(this.deps.db.kysely, id);
    if (!row) throw notFound(`no request ${id}`, 'list yours with `jitctl list --mine`');
    return row;
  }

  /** Requester, approvers of the role, admins and auditors may see a request. */
  async visible(caller: Caller, id: string): Promise<RequestRow> {
    const row = await this.load(id);
    const role = this.role(row.role);
    const ok =
      isRequester(row, caller) ||
      (role !== undefined && canReview(role, caller)) ||
      this.isAdmin(caller) ||
      this.isAuditor(caller);
    if (!ok) {
      throw forbidden(
        `you may not see request ${id}: you neither filed it nor review role ${row.role}`,
      );
    }
    return row;
  }

  /** The request with what time alone changes applied (in its own transaction), or as it was. */
  async settle(row: RequestRow): Promise<RequestRow> {
    if (!isDue(row, this.now())) return row;
    const written = await this.writer.transaction(async (tx): Promise<Written> => {
      const locked = await this.writer.lock(tx, row.id);
      return this.writer.settleLocked(tx, locked, this.now());
    });
    this.writer.published(written);
    return written.row;
  }
}
