import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { printJson } from '../cli/output.js';
import { requestId } from '../cli/request-flow.js';
import { detailView } from '../cli/request-view.js';

/**
 * `jitctl show <id> [--json]`: one request, whole: requester, role, duration, reason, ticket,
 * when filed, approvers, reviews and fingerprint. `--json` prints the API's request object.
 */
export interface Options extends ConnectOptions {
  id: string;
  json?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const id = requestId(options.id);
  const request = await withConnection(ctx, options, (conn) => conn.client.getRequest(id));
  if (options.json) printJson(ctx.io, request);
  else ctx.io.out(detailView(request, ctx.clock.now()));
  return 0;
}
