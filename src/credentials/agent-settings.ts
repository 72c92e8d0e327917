import { configFile, loadUserConfig } from '../cli/config.js';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';

/**
 * Whether the unlock agent is on, and for how long: JITCTL_AGENT_TIMEOUT, then `agent_timeout`
 * in the config file; off when neither is set (the default). Kept out of src/cli/config.ts so
 * that commands which never open the file store do not load the duration parser.
 */

/** The longest the unlock agent may keep the file store unlocked. */
export const MAX_AGENT_TIMEOUT_MS = 12 * 3_600_000;

/** How long the agent keeps the store unlocked (ms), or undefined when it is off. */
export async function resolveAgentTimeout(
  ctx: Pick<Context, 'env' | 'paths'>,
): Promise<number | undefined> {
  const fromEnv = ctx.env.JITCTL_AGENT_TIMEOUT;
  if (fromEnv !== undefined && fromEnv !== '') {
    return parseAgentTimeout(fromEnv, 'JITCTL_AGENT_TIMEOUT');
  }
  const config = await loadUserConfig(ctx);
  if (config.agent_timeout === undefined) return undefined;
  return parseAgentTimeout(config.agent_timeout, `${configFile(ctx)}: "agent_timeout"`);
}

/** A duration up to 12h, or "off"/"0" (undefined); anything else is a usage error naming `where`. */
export async function parseAgentTimeout(value: string, where: string): Promise<number | undefined> {
  const v = value.trim().toLowerCase();
  if (v === 'off' || v === '0' || v === 'false' || v === 'no') return undefined;
  const { tryParseDuration } = await import('../api/duration.js');
  const ms = tryParseDuration(v);
  if (ms === undefined) {
    throw new UsageError(`${where} ${JSON.stringify(value)} is not a duration`, {
      hint: 'e.g. 15m or 1h (how long the file store stays unlocked), or off',
    });
  }
  if (ms > MAX_AGENT_TIMEOUT_MS) {
    throw new UsageError(`${where} ${JSON.stringify(value)} is longer than the maximum of 12h`, {
      hint: 'choose 12h or less; the agent keeps the store unlocked for that long after each unlock',
    });
  }
  return ms;
}
