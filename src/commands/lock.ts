import type { Context } from '../cli/context.js';
import { style } from '../cli/output.js';

/**
 * `jitctl lock`: the unlock agent forgets the file store's key and exits (`ssh-add -D`, `gpgconf
 * --reload gpg-agent`), so the next command asks for the passphrase again. Harmless when no agent
 * runs. Needs no passphrase, no broker and no store.
 */
export type Options = Record<string, never>;

export async function run(_options: Options, ctx: Context): Promise<number> {
  const { agentLocation, lockAgent } = await import('../credentials/file-store.js');
  const forgot = await lockAgent(agentLocation(ctx));
  if (forgot === undefined) {
    ctx.io.err('nothing to lock: the unlock agent is not running\n');
    return 0;
  }
  const what =
    forgot === 0
      ? 'held no key'
      : `forgot ${forgot === 1 ? 'the key' : `${forgot} keys`} of the file store`;
  ctx.io.err(`${style(ctx.io, 'green', '✔')} locked: the unlock agent ${what} and stopped\n`);
  return 0;
}
