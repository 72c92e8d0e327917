import {
  type CachedRequest,
  type CachedRole,
  cachedRequests,
  cachedRoles,
  quietly,
  rememberRequests,
  rememberRoles,
} from '../cli/broker-cache.js';
import { resolveServer } from '../cli/config.js';
import type { ConnectOptions } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import { safe } from '../cli/output.js';

/**
 * `jitctl __complete roles|requests` (hidden): the words shell completion offers for a role or a
 * request id, one per line as `word<TAB>description`. It must answer at once and never ask
 * anything: a fresh cache answers alone; otherwise the broker is asked with a short budget and
 * without prompts (the file store opens only with JITCTL_FILE_PASSPHRASE or the unlock agent),
 * and a stale cache is the fallback. Any failure prints nothing and exits 0.
 */
export interface Options extends ConnectOptions {
  what: string;
}

/** Role lists change with the policy; request ids with every request. */
const FRESH_MS = { roles: 10 * 60_000, requests: 20_000 };
/** The longest completion may wait for the broker. */
const BUDGET_MS = 1_500;

const word = (text: string) => safe(text).replace(/\s+/g, ' ');

export async function run(options: Options, ctx: Context): Promise<number> {
  if (options.what !== 'roles' && options.what !== 'requests') {
    throw new UsageError(`__complete: unknown kind ${JSON.stringify(options.what)}`, {
      hint: 'roles or requests',
    });
  }
  let server: string;
  try {
    server = await resolveServer(ctx, options.server);
  } catch {
    return 0;
  }
  const now = ctx.clock.now();
  if (options.what === 'roles') {
    const cache = await cachedRoles(ctx, server);
    let roles: CachedRole[] | undefined =
      cache && now - cache.fetchedAt < FRESH_MS.roles ? cache.items : undefined;
    if (!roles) {
      const fetched = await quietly(ctx, options, BUDGET_MS, (c) => c.client.roles());
      if (fetched) await rememberRoles(ctx, server, fetched.roles);
      roles = fetched?.roles ?? cache?.items ?? [];
    }
    for (const r of roles.filter((r) => r.can_request || r.can_review)) {
      ctx.io.out(`${word(r.name)}\t${word(r.description ?? '')}\n`);
    }
    return 0;
  }
  const cache = await cachedRequests(ctx, server);
  let requests: CachedRequest[] | undefined =
    cache && now - cache.fetchedAt < FRESH_MS.requests ? cache.items : undefined;
  if (!requests) {
    const fetched = await quietly(ctx, options, BUDGET_MS, (c) =>
      c.client.listRequests({ limit: 50 }),
    );
    if (fetched) await rememberRequests(ctx, server, fetched.items);
    requests =
      fetched?.items.map((r) => ({
        id: r.id,
        role: r.role,
        state: r.state,
        requester: r.requester.name ?? r.requester.sub,
      })) ??
      cache?.items ??
      [];
  }
  for (const r of requests) {
    ctx.io.out(`${word(r.id)}\t${word(r.role)} · ${word(r.state)} · ${word(r.requester)}\n`);
  }
  return 0;
}
