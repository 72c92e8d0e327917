import type { NoCredentialError } from '../credentials/active.js';
import { type CachedRole, cachedRoles, quietly, rememberRoles } from './broker-cache.js';
import type { Context } from './context.js';
import { DeniedError, type JitError } from './errors.js';
import { safe } from './output.js';

/**
 * Hints that need to know more than the code that threw: the CLI's entry (src/cli/main.ts) hands
 * errors here before printing them. Lookups are quick and quiet (the roles cache first, else the
 * broker within {@link BUDGET_MS}, never a prompt) and any failure leaves the error as it was.
 */

const BUDGET_MS = 1_500;

export async function refineError(ctx: Context, err: unknown): Promise<unknown> {
  if ((err as { name?: unknown } | null)?.name === 'NoCredentialError') {
    return noCredential(ctx, err as NoCredentialError);
  }
  return err;
}

/**
 * "no active credential for db-read": the `jitctl request` that gets one, with the role's own
 * default duration (never more than its maximum) and `--reason` only when the role asks for one.
 */
async function noCredential(ctx: Context, err: NoCredentialError): Promise<JitError> {
  const { role, server } = err;
  if (!role || !server) return err;
  let roles: CachedRole[] | undefined = (await cachedRoles(ctx, server))?.items;
  if (!roles?.some((r) => r.name === role)) {
    const fetched = await quietly(ctx, { server }, BUDGET_MS, (c) => c.client.roles());
    if (fetched) {
      await rememberRoles(ctx, server, fetched.roles);
      roles = fetched.roles;
    }
  }
  if (!roles) return err;
  const found = roles.find((r) => r.name === role);
  if (!found) {
    const mine = roles.filter((r) => r.can_request).map((r) => safe(r.name));
    return new DeniedError(err.message, {
      hint: `${server} has no role ${safe(role)} you may request${mine.length > 0 ? `; roles you may request: ${mine.join(', ')}` : ''}`,
      cause: err,
    });
  }
  if (!found.can_request) {
    return new DeniedError(err.message, {
      hint: `you may not request ${safe(role)}; \`jitctl roles\` lists the roles you may`,
      cause: err,
    });
  }
  const reason = found.require_reason ? ' --reason "…"' : '';
  return new DeniedError(err.message, {
    hint: `request one: jitctl request ${safe(role)} --for ${safe(found.default_duration)}${reason}   (at most ${safe(found.max_duration)})`,
    cause: err,
  });
}
