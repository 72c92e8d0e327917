import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { AccessRequest, RoleSummary } from '../api/schemas.js';
import type { ConnectOptions } from './connect.js';
import type { Context } from './context.js';
import { UsageError } from './errors.js';
import type { IO } from './io.js';
import type { Prompter } from './prompt.js';

/**
 * What the CLI remembers of a broker between commands, for the places that must answer at once
 * or without the network: shell completion (role names, request ids), and the hints that name a
 * role's own duration and whether it needs a reason. Written whenever a command has the answer
 * anyway (`jitctl roles`, `jitctl doctor`, completion itself), in
 * `$XDG_STATE_HOME/jitctl/cache/` (0600 files in a 0700 directory: role names and request ids are
 * nobody else's business). Never a token. Every read tolerates a missing or damaged file.
 */

export interface CachedRole {
  name: string;
  description: string | null;
  default_duration: string;
  max_duration: string;
  require_reason: boolean;
  can_request: boolean;
  can_review: boolean;
}

export interface CachedRequest {
  id: string;
  role: string;
  state: string;
  requester: string;
}

interface CacheFile<T> {
  server: string;
  fetched_at: number;
  items: T[];
}

type Kind = 'roles' | 'requests';

function cachePath(ctx: Pick<Context, 'paths'>, kind: Kind, server: string): string {
  const id = createHash('sha256').update(server).digest('hex').slice(0, 16);
  return join(ctx.paths.stateDir, 'cache', `${kind}-${id}.json`);
}

async function readCache<T>(
  ctx: Pick<Context, 'paths'>,
  kind: Kind,
  server: string,
): Promise<{ fetchedAt: number; items: T[] } | undefined> {
  try {
    const v = JSON.parse(await readFile(cachePath(ctx, kind, server), 'utf8')) as CacheFile<T>;
    if (v.server !== server || !Array.isArray(v.items) || typeof v.fetched_at !== 'number')
      return undefined;
    return { fetchedAt: v.fetched_at, items: v.items };
  } catch {
    return undefined;
  }
}

/** Best effort: a cache that cannot be written only means the next answer is slower. */
async function writeCache<T>(
  ctx: Pick<Context, 'paths' | 'clock'>,
  kind: Kind,
  server: string,
  items: T[],
): Promise<void> {
  try {
    const file = cachePath(ctx, kind, server);
    await mkdir(join(ctx.paths.stateDir, 'cache'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify({ server, fetched_at: ctx.clock.now(), items }));
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch {
    // ignored: see above
  }
}

export function rememberRoles(
  ctx: Pick<Context, 'paths' | 'clock'>,
  server: string,
  roles: RoleSummary[],
): Promise<void> {
  const items: CachedRole[] = roles.map((r) => ({
    name: r.name,
    description: r.description,
    default_duration: r.default_duration,
    max_duration: r.max_duration,
    require_reason: r.require_reason,
    can_request: r.can_request,
    can_review: r.can_review,
  }));
  return writeCache(ctx, 'roles', server, items);
}

export function rememberRequests(
  ctx: Pick<Context, 'paths' | 'clock'>,
  server: string,
  requests: AccessRequest[],
): Promise<void> {
  const items: CachedRequest[] = requests.map((r) => ({
    id: r.id,
    role: r.role,
    state: r.state,
    requester: r.requester.name ?? r.requester.sub,
  }));
  return writeCache(ctx, 'requests', server, items);
}

export async function cachedRoles(
  ctx: Pick<Context, 'paths'>,
  server: string,
): Promise<{ fetchedAt: number; items: CachedRole[] } | undefined> {
  return readCache<CachedRole>(ctx, 'roles', server);
}

export async function cachedRequests(
  ctx: Pick<Context, 'paths'>,
  server: string,
): Promise<{ fetchedAt: number; items: CachedRequest[] } | undefined> {
  return readCache<CachedRequest>(ctx, 'requests', server);
}

const refuse = (): never => {
  throw new UsageError('nothing may be asked here');
};
const silentPrompter: Prompter = { confirm: refuse, input: refuse, password: refuse };

/**
 * A context that never asks anything and prints nothing: for work done on the side (completion,
 * the roles lookup behind a hint), where a passphrase prompt or a sign-in would be a surprise.
 * The file store then opens only with JITCTL_FILE_PASSPHRASE or the unlock agent.
 */
export function quietContext(ctx: Context): Context {
  const io: IO = { ...ctx.io, canPrompt: () => false, out: () => {}, err: () => {} };
  return { ...ctx, io, ci: true, prompter: silentPrompter };
}

/**
 * Runs `use` with a connection from {@link quietContext}, giving up after `budgetMs` (the
 * broker, the store and a token refresh all count): undefined when it did not finish in time or
 * failed for any reason.
 */
export async function quietly<T>(
  ctx: Context,
  opts: ConnectOptions,
  budgetMs: number,
  use: (conn: import('./connect.js').Connection) => Promise<T>,
): Promise<T | undefined> {
  const { connect } = await import('./connect.js');
  const quiet = quietContext(ctx);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), budgetMs);
    timer.unref();
  });
  let conn: import('./connect.js').Connection | undefined;
  const work = (async () => {
    conn = await connect(quiet, opts, {
      attempts: 1,
      connectTimeoutMs: budgetMs,
      readTimeoutMs: budgetMs,
    });
    return use(conn);
  })().catch(() => undefined);
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
    void conn?.client.close().catch(() => {});
  }
}
