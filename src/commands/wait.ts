import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { awaitOutcome, durationFlag, finishOutcome, requestId } from '../cli/request-flow.js';
import { filedBy } from '../cli/request-view.js';

/**
 * `jitctl wait <id> [--timeout D] [--json]`: resume waiting for a request, e.g. after Ctrl-C or
 * `--timeout`, or from another terminal. For your own request the credential is fetched and kept
 * once approved (also when it was approved while nobody waited), and a scheduled one is waited
 * for until its start; a reviewer may wait on someone
 * else's request too, and learns the outcome. Exit codes as `jitctl request`.
 */
export interface Options extends ConnectOptions {
  id: string;
  timeout?: string | undefined;
  json?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const id = requestId(options.id);
  const timeoutMs = durationFlag('--timeout', options.timeout);
  return withConnection(ctx, options, async (conn) => {
    const [request, me] = await Promise.all([conn.client.getRequest(id), conn.client.me()]);
    const outcome = await awaitOutcome(ctx, conn, request, {
      timeoutMs,
      keep: filedBy(request, me) ? 'store' : 'none',
      // Your own scheduled request: wait for its start too, then fetch the credential.
      throughStart: filedBy(request, me),
    });
    return finishOutcome(ctx, outcome, options.json);
  });
}
