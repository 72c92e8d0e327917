import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { printJson, safe, style } from '../cli/output.js';
import { requestId } from '../cli/request-flow.js';

/**
 * `jitctl cancel <id> [--json]`: withdraw a pending request you filed. Repeating it is harmless
 * (the broker answers a cancelled request as it is). An approved request is ended with
 * `jitctl revoke` instead; the broker says so (exit 3).
 */
export interface Options extends ConnectOptions {
  id: string;
  json?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const id = requestId(options.id);
  const request = await withConnection(ctx, options, (conn) => conn.client.cancel(id));
  if (options.json) printJson(ctx.io, request);
  ctx.io.err(
    `${style(ctx.io, 'green', '✔')} cancelled ${safe(request.id)} (${safe(request.role)} for ${safe(request.duration)})\n`,
  );
  return 0;
}
