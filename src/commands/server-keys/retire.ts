import type { Context } from '../../cli/context.js';
import { DeniedError, UsageError } from '../../cli/errors.js';
import { printJson, relative, safe, style } from '../../cli/output.js';
import { isoMinute, keyJson, operator, type ServerKeysOptions, withKeys } from './open.js';

/**
 * `jitctl server keys retire <kid> [--force] [--reason TEXT] [--json]`: drops a published key
 * from the JWKS, so relying parties stop accepting anything it signed. Refused (exit 3) while a
 * credential or pipeline session it signed may still be valid, with the time it becomes safe;
 * `--force` retires it anyway (after a key compromise: its credentials then fail at relying
 * parties that refetch the JWKS). The signing key is never retired: rotate first. Audited as
 * `key.retired`.
 */
export interface Options extends ServerKeysOptions {
  kid: string;
  force?: boolean | undefined;
  reason?: string | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const [{ latestExpiry, retirableAt }, { findKey }] = await Promise.all([
    import('../../server/mint/key-retirement.js'),
    import('../../server/mint/key-store.js'),
  ]);
  const kid = options.kid.trim();
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(kid))
    throw new UsageError(`${JSON.stringify(safe(kid.slice(0, 64)))} is not a key id`, {
      hint: '`jitctl server keys list` shows the kids',
    });
  const reason = options.reason?.trim();
  if (reason !== undefined && (reason === '' || reason.length > 500))
    throw new UsageError('--reason must be 1 to 500 characters');
  return withKeys(options, ctx, async ({ config, db, store }) => {
    const now = ctx.clock.now();
    await store.ensure(config.signingAlg, now, { create: false });
    const keys = await store.list();
    const key = findKey(keys, kid);
    if (!key)
      throw new UsageError(`no key ${kid} in ${store.description}`, {
        hint: `\`jitctl server keys list\` shows the kids${kid.length < 6 ? ' (give at least 6 characters of one)' : ''}`,
      });
    if (key.state === 'signing')
      throw new DeniedError(`key ${key.kid} is the signing key; it cannot be retired`, {
        hint: 'rotate first (`jitctl server keys rotate`), then retire it once its credentials have expired',
      });
    if (key.state === 'retired')
      throw new DeniedError(
        `key ${key.kid} was already retired at ${isoMinute(key.retiredAt ?? now)}`,
      );
    const lastExp = await latestExpiry(db, key.kid);
    const safeAt = retirableAt(key, lastExp)!;
    if (now < safeAt && !options.force) {
      const why =
        lastExp !== null && lastExp > now
          ? `the last credential it signed expires at ${isoMinute(lastExp)}`
          : 'it stopped signing moments ago (replicas may still be using it; relying parties allow clock leeway)';
      throw new DeniedError(
        `key ${key.kid} may still verify valid credentials: ${why}; it is safe to retire at ${isoMinute(safeAt)} (${relative(safeAt, now)})`,
        { hint: 'retire it then, or now with --force (its credentials stop verifying)' },
      );
    }
    const retired = await store.retire(key.kid, now, {
      actor: operator('jitctl server keys retire'),
      safeAt,
      forced: now < safeAt,
      reason,
    });
    if (options.json)
      printJson(ctx.io, { store: store.description, retired: keyJson(retired, safeAt) });
    else
      ctx.io.err(
        `${style(ctx.io, 'green', '✔')} retired ${retired.kid} (${retired.alg}); running brokers drop it from the JWKS within seconds\n` +
          (now < safeAt
            ? '  forced: credentials it signed no longer verify once relying parties refetch the JWKS\n'
            : ''),
      );
    return 0;
  });
}
