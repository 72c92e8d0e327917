import { parseDuration } from '../api/duration.js';
import { LIMITS } from '../api/schemas.js';
import { type Connection, type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { DeniedError, ExitCode, UsageError } from '../cli/errors.js';
import { clockTime, printJson, safe, style } from '../cli/output.js';
import { requestId } from '../cli/request-flow.js';
import { who } from '../cli/request-view.js';
import { confirm, needConfirmation, showForDecision } from '../cli/review-flow.js';
import { credentialKey, decodeCredential } from '../credentials/records.js';

/**
 * `jitctl revoke <id> [--reason TEXT] [--yes] [--json]`: end an approved grant now. The
 * requester, an approver of the role or an administrator may. From then on the broker mints
 * nothing for it; the requester's jitctl refuses its stored credential and ends commands running
 * under it (exec, shell); relying parties that introspect or follow `GET /v1/revocations` refuse
 * it at once, and those that only check signatures when its last credential expires (the role's
 * `credential.ttl`), which is why the output says until when. This command also deletes the
 * credential of that request from this machine's store, if it is there.
 */
export interface Options extends ConnectOptions {
  id: string;
  reason?: string | undefined;
  yes?: boolean | undefined;
  json?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const id = requestId(options.id);
  if (options.reason !== undefined && options.reason.length > LIMITS.reason)
    throw new UsageError(
      `--reason is ${options.reason.length} characters; at most ${LIMITS.reason} fit`,
    );
  needConfirmation(ctx, 'Revoking', options.yes);
  return withConnection(ctx, options, async (conn) => {
    const request = await conn.client.getRequest(id);
    showForDecision(ctx, request);
    if (request.state !== 'approved' && request.state !== 'revoked') {
      throw new DeniedError(
        `${safe(id)} is ${request.state}; only approved requests can be revoked`,
        {
          hint:
            request.state === 'pending'
              ? `a pending request is withdrawn with \`jitctl cancel ${safe(id)}\` (or denied by a reviewer)`
              : undefined,
        },
      );
    }
    const question = `Revoke ${safe(id)}: ${who(request.requester)} loses ${safe(request.role)} now?`;
    if (request.state === 'approved' && !(await confirm(ctx, question, options.yes))) {
      return ExitCode.Error;
    }
    const after = await conn.client.revoke(id, options.reason);

    // The credential of this request, if this machine holds it (a credential of another request
    // for the same role is left alone).
    const key = credentialKey(conn.server, after.role);
    const stored = decodeCredential(await conn.store.get(key));
    const removed = stored !== undefined && stored.requestId === after.id;
    if (removed) await conn.store.delete(key);

    if (options.json) printJson(ctx.io, after);
    const windowEnd = Date.parse(after.expires_at);
    // The last credential minted expires within one credential.ttl; never after the window.
    const lastExp = Math.min(windowEnd, ctx.clock.now() + (await lifetimeOf(conn, after.role)));
    ctx.io.err(
      `${style(ctx.io, 'green', '✔')} revoked ${safe(after.id)} (${safe(after.role)} for ${who(after.requester)}); ` +
        'no credential is minted for it again\n' +
        "  the requester's jitctl refuses it and ends the commands running under it; services that introspect or follow /v1/revocations refuse it now\n" +
        (removed ? `  removed the stored credential for ${safe(after.role)}\n` : '') +
        `  services that only check signatures accept a credential already issued until it expires, by ${clockTime(lastExp)} at the latest\n`,
    );
    return 0;
  });
}

/**
 * The role's credential lifetime as the broker describes it (GET /v1/roles), for the message;
 * the window's length when it does not say.
 */
async function lifetimeOf(conn: Connection, role: string): Promise<number> {
  try {
    const roles = await conn.client.roles();
    const ttl = roles.roles.find((r) => r.name === role)?.credential_ttl;
    return ttl ? parseDuration(ttl) : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
