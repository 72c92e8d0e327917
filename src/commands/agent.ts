import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';

/**
 * `jitctl __agent --socket PATH` (hidden): the unlock agent's process, started by a command that
 * unlocked the file store with the agent turned on (src/credentials/agent.ts). Prints `ready`
 * (or `running` when another agent already listens there) for the process that started it, then
 * serves until its keys expire or `jitctl lock`.
 */
export interface Options {
  socket?: string | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  if (!options.socket) throw new UsageError('__agent needs --socket PATH');
  const { serveAgent } = await import('../credentials/agent-server.js');
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, onSignal);
  try {
    await serveAgent({
      socket: options.socket,
      pid: process.pid,
      signal: stop.signal,
      ready: (state) => ctx.io.out(`${state}\n`),
    });
  } finally {
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(sig, onSignal);
  }
  return 0;
}
