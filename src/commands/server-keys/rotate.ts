import type { Context } from '../../cli/context.js';
import { UsageError } from '../../cli/errors.js';
import { printJson, style } from '../../cli/output.js';
import type { SigningAlg } from '../../server/mint/keys.js';
import { keyJson, operator, type ServerKeysOptions, withKeys } from './open.js';

/**
 * `jitctl server keys rotate [--alg ES256|RS256|EdDSA] [--reason TEXT] [--json]`: a new signing
 * key (the algorithm of `signing_alg` unless --alg says otherwise) with a new kid. Running brokers
 * sign with it within seconds (they re-read the keys); the previous key stops signing, loses its
 * private part and stays in the JWKS until everything it signed has expired, then is retired
 * (automatically with `signing_key: db`, or with `jitctl server keys retire`). Audited as
 * `key.created` and `key.rotated`.
 */
export interface Options extends ServerKeysOptions {
  alg?: string | undefined;
  reason?: string | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const { SIGNING_ALGS } = await import('../../server/mint/keys.js');
  let alg: SigningAlg | undefined;
  if (options.alg !== undefined) {
    alg = SIGNING_ALGS.find((a) => a.toLowerCase() === options.alg!.toLowerCase());
    if (!alg)
      throw new UsageError(
        `--alg must be one of ${SIGNING_ALGS.join(', ')}, not ${JSON.stringify(options.alg)}`,
        {
          hint: 'ES256 is accepted by every relying party in docs/operations.md; EdDSA is not by Kubernetes',
        },
      );
  }
  const reason = options.reason?.trim();
  if (reason !== undefined && (reason === '' || reason.length > 500))
    throw new UsageError('--reason must be 1 to 500 characters');
  return withKeys(options, ctx, async ({ config, store }) => {
    const now = ctx.clock.now();
    const use = alg ?? config.signingAlg;
    const { created, previous } = await store.rotate(use, now, {
      actor: operator('jitctl server keys rotate'),
      reason,
    });
    if (options.json) {
      printJson(ctx.io, {
        store: store.description,
        created: keyJson(created, null),
        previous: previous ? keyJson(previous, null) : null,
      });
    } else {
      ctx.io.out(`${created.kid}\n`);
      ctx.io.err(
        `${style(ctx.io, 'green', '✔')} new ${created.alg} signing key ${created.kid} in ${store.description}\n` +
          '  running brokers sign with it within seconds (they re-read the keys every 5 s)\n' +
          (previous
            ? `  ${previous.kid} stays in the JWKS until what it signed has expired; \`jitctl server keys list\` says when\n`
            : ''),
      );
    }
    return 0;
  });
}
