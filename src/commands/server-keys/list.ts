import type { Context } from '../../cli/context.js';
import { printJson, relative, table } from '../../cli/output.js';
import { isoMinute, keyJson, type ServerKeysOptions, withKeys } from './open.js';

/**
 * `jitctl server keys list [--json]`: the broker's signing keys, newest first, with their state
 * (signing, published, retired) and, for published keys, when they can be retired: once the last
 * credential or pipeline session they signed has expired (from the audit log), plus the allowances
 * of key-retirement.ts. A database from before key rotation is adopted as the broker would at its
 * next start; an empty one stays empty (the broker makes the first key when it starts).
 */
export type Options = ServerKeysOptions;

export async function run(options: Options, ctx: Context): Promise<number> {
  const { latestExpiry, retirableAt } = await import('../../server/mint/key-retirement.js');
  return withKeys(options, ctx, async ({ config, db, store }) => {
    const now = ctx.clock.now();
    await store.ensure(config.signingAlg, now, { create: false });
    const keys = await store.list();
    const rows = await Promise.all(
      keys.map(async (k) => ({
        key: k,
        retirable: k.state === 'published' ? retirableAt(k, await latestExpiry(db, k.kid)) : null,
      })),
    );
    if (options.json) {
      printJson(ctx.io, {
        store: store.description,
        signing_alg: config.signingAlg,
        keys: rows.map((r) => keyJson(r.key, r.retirable)),
      });
      return 0;
    }
    if (keys.length === 0) {
      ctx.io.err(
        `no signing keys in ${store.description} yet: the broker makes one at its first start\n`,
      );
      return 0;
    }
    const when = (r: (typeof rows)[number]) => {
      if (r.key.state === 'signing') return 'rotate first';
      if (r.key.state === 'retired') return `retired ${isoMinute(r.key.retiredAt ?? now)}`;
      const at = r.retirable!;
      return at <= now ? 'now' : `${isoMinute(at)} (${relative(at, now)})`;
    };
    ctx.io.out(
      table(
        ctx.io,
        ['kid', 'alg', 'state', 'created', 'retire'],
        rows.map((r) => [r.key.kid, r.key.alg, r.key.state, isoMinute(r.key.createdAt), when(r)]),
      ),
    );
    ctx.io.err(`keys in ${store.description}; new keys: ${config.signingAlg} (signing_alg)\n`);
    return 0;
  });
}
