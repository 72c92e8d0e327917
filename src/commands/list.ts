import {
  type AccessRequest,
  BREAK_GLASS_FILTERS,
  type BreakGlassFilter,
  REQUEST_STATES,
  type RequestState,
} from '../api/schemas.js';
import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import { printJson, safe, table } from '../cli/output.js';
import { LIST_HEADERS, listRow } from '../cli/request-view.js';

/**
 * `jitctl list [--mine | --reviewable] [--state S] [--limit N] [--json]`: requests you may see,
 * newest first, as a table (id, role, requester, state, age, duration, reason) or as a JSON
 * array of the API's request objects. Pages are fetched until `--limit` is reached.
 */
export interface Options extends ConnectOptions {
  mine?: boolean | undefined;
  reviewable?: boolean | undefined;
  state?: string | undefined;
  limit?: string | undefined;
  json?: boolean | undefined;
  /** `--break-glass [any|unreviewed|overdue|acknowledged|flagged]` (true: any). */
  breakGlass?: string | boolean | undefined;
}

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 1000;
/** The broker's largest page. */
const PAGE = 200;

export function parseState(value: string | undefined): RequestState | undefined {
  if (value === undefined) return undefined;
  const state = value.trim().toLowerCase();
  if (!(REQUEST_STATES as readonly string[]).includes(state)) {
    throw new UsageError(`--state ${safe(value)} is not a request state`, {
      hint: `states: ${REQUEST_STATES.join(', ')}`,
    });
  }
  return state as RequestState;
}

export function parseBreakGlass(value: string | boolean | undefined): BreakGlassFilter | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return 'any';
  const v = value.trim().toLowerCase();
  if (!(BREAK_GLASS_FILTERS as readonly string[]).includes(v)) {
    throw new UsageError(`--break-glass ${safe(value)} is not a filter`, {
      hint: `filters: ${BREAK_GLASS_FILTERS.join(', ')}`,
    });
  }
  return v as BreakGlassFilter;
}

export function parseLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LIMIT;
  const n = /^\d{1,7}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!(n >= 1 && n <= MAX_LIMIT)) {
    throw new UsageError(`--limit ${safe(value)} is not a number from 1 to ${MAX_LIMIT}`);
  }
  return n;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  if (options.mine && options.reviewable) {
    throw new UsageError('--mine and --reviewable cannot be combined', { hint: 'pick one' });
  }
  const state = parseState(options.state);
  const limit = parseLimit(options.limit);
  const breakGlass = parseBreakGlass(options.breakGlass);
  const items: AccessRequest[] = [];
  const more = await withConnection(ctx, options, async ({ client }) => {
    let cursor: string | undefined;
    do {
      const page = await client.listRequests({
        state,
        mine: options.mine,
        reviewable: options.reviewable,
        cursor,
        limit: Math.min(PAGE, limit - items.length),
        break_glass: breakGlass,
      });
      items.push(...page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined && items.length < limit);
    return cursor !== undefined;
  });

  if (options.json) {
    printJson(ctx.io, items);
    return 0;
  }
  if (items.length === 0) {
    ctx.io.err(`no ${describeFilter(options, state)}\n`);
    return 0;
  }
  const now = ctx.clock.now();
  ctx.io.out(
    table(
      ctx.io,
      LIST_HEADERS,
      items.map((r) => listRow(r, now)),
    ),
  );
  if (more) {
    ctx.io.err(
      limit < MAX_LIMIT
        ? `(showing the first ${items.length}; there are more: raise --limit, up to ${MAX_LIMIT})\n`
        : `(showing the first ${items.length}; narrow with --state, --mine or --reviewable)\n`,
    );
  }
  return 0;
}

function describeFilter(options: Options, state: RequestState | undefined): string {
  const what = `${state ? `${state} ` : ''}requests`;
  if (options.mine) return `${what} filed by you`;
  if (options.reviewable) return `${what} for you to review`;
  return `${what} you can see`;
}
