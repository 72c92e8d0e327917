import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { DeniedError, ExitCode } from '../cli/errors.js';
import { clockTime, printJson, safe, style } from '../cli/output.js';
import { requestId } from '../cli/request-flow.js';
import { who } from '../cli/request-view.js';
import { confirm, needConfirmation, showForDecision } from '../cli/review-flow.js';
import { credentialKey, decodeCredential } from '../credentials/records.js';

/**
 * `jitctl revoke <id> [--yes] [--json]`: end an approved request early. The requester, an
 * approver of the role or an administrator may. The broker then refuses to mint for it and lists
 * it at `GET /v1/revocations`; this command also deletes the credential of that request from the
 * local store, if it is there. Tokens already handed to other systems stay valid until their
 * `exp` wherever those systems do not check the revocation list, which is why the output says
 * until when.
 */
export interface Options extends ConnectOptions {
  id: string;
  yes?: boolean | undefined;
  json?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const id = requestId(options.id);
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
    const after = await conn.client.revoke(id);

    // The credential of this request, if this machine holds it (a credential of another request
    // for the same role is left alone).
    const key = credentialKey(conn.server, after.role);
    const stored = decodeCredential(await conn.store.get(key));
    const removed = stored !== undefined && stored.requestId === after.id;
    if (removed) await conn.store.delete(key);

    if (options.json) printJson(ctx.io, after);
    const windowEnd = clockTime(Date.parse(after.expires_at));
    ctx.io.err(
      `${style(ctx.io, 'green', '✔')} revoked ${safe(after.id)} (${safe(after.role)} for ${who(after.requester)}); ` +
        `the broker mints nothing more for it and lists it at /v1/revocations\n` +
        (removed ? `  removed the stored credential for ${safe(after.role)}\n` : '') +
        `  tokens already issued still carry exp ${windowEnd} for systems that do not check revocations\n`,
    );
    return 0;
  });
}
