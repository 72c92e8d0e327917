import { ErrorCode } from '../api/errors.js';
import { type AccessRequest, LIMITS } from '../api/schemas.js';
import { type Connection, type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import {
  ApiError,
  DeniedError,
  InterruptedError,
  StillPendingError,
  UsageError,
} from '../cli/errors.js';
import { clockTime, printJson, relative, safe, style } from '../cli/output.js';
import { startProgress } from '../cli/progress.js';
import { durationFlag, fetchCredential, requestId } from '../cli/request-flow.js';
import { whoShort } from '../cli/request-view.js';
import { waitForDecision } from '../client/await-approval.js';
import { credentialKey, decodeCredential, encodeCredential } from '../credentials/records.js';

/**
 * `jitctl extend <id|role> --for 30m [--reason TEXT] [--no-wait] [--timeout D] [--json]`: ask for
 * more time on an approved grant. Reviewed like a request (approvers run `jitctl approve <id>`),
 * unless the role extends at once; the grant keeps working until its current end meanwhile. Once
 * approved, a credential kept for the role is fetched again with the new end. Exit codes: 3 when
 * the extension is denied, 5 when still pending at `--timeout`, 130 at Ctrl-C (the extension stays
 * asked for; `jitctl show <id>` shows it, `jitctl cancel <id>` withdraws it).
 */
export interface Options extends ConnectOptions {
  target: string;
  for?: string | undefined;
  reason?: string | undefined;
  /** false with --no-wait. */
  wait?: boolean | undefined;
  timeout?: string | undefined;
  json?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  if (options.for === undefined) {
    throw new UsageError('--for is required: how much longer you need it', {
      hint: `e.g. jitctl extend ${safe(options.target)} --for 30m`,
    });
  }
  durationFlag('--for', options.for);
  const timeoutMs = durationFlag('--timeout', options.timeout);
  if (options.reason !== undefined && options.reason.length > LIMITS.reason) {
    throw new UsageError(
      `--reason is ${options.reason.length} characters; at most ${LIMITS.reason} fit`,
    );
  }
  const target = options.target.trim();
  if (target === '') throw new UsageError('name the grant: a request id or a role');
  return withConnection(ctx, options, async (conn) => {
    const id = await grantOf(conn, target);
    const asked = await ask(ctx, conn, id, options.for!, options.reason);
    const ext = asked.extension;
    if (!ext) throw new DeniedError(`${safe(id)} did not take the extension`);
    if (ext.state === 'approved' || options.wait === false) {
      return finish(ctx, conn, asked, options.json);
    }
    const decided = await waitForExtension(ctx, conn, asked, timeoutMs);
    return finish(ctx, conn, decided, options.json);
  });
}

/** A request id as is; a role: the grant whose credential is kept for it, else your latest. */
async function grantOf(conn: Connection, target: string): Promise<string> {
  if (target.startsWith('req_')) return requestId(target);
  const kept = decodeCredential(await conn.store.get(credentialKey(conn.server, target)));
  if (kept) return kept.requestId;
  const page = await conn.client.listRequests({ mine: true, state: 'approved', limit: 50 });
  const grant = page.items.find((r) => r.role === target);
  if (!grant) {
    throw new DeniedError(`you have no approved grant of ${safe(target)} to extend`, {
      hint: `ask for it: jitctl request ${safe(target)}`,
    });
  }
  return grant.id;
}

async function ask(
  ctx: Context,
  conn: Connection,
  id: string,
  duration: string,
  reason: string | undefined,
): Promise<AccessRequest> {
  const body = { duration, ...(reason?.trim() ? { reason } : {}) };
  try {
    return await conn.client.extend(id, body);
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== ErrorCode.ReasonRequired) throw err;
    if (!ctx.io.canPrompt()) {
      throw new UsageError(err.message, { hint: 'pass --reason "why you need longer"' });
    }
    const answer = await ctx.prompter.input('Reason for the extension (shown to the reviewers):', {
      orFlag: '--reason',
      validate: (v) => (v.trim() === '' ? 'a reason is required for this role' : true),
    });
    return conn.client.extend(id, { duration, reason: answer });
  }
}

async function waitForExtension(
  ctx: Context,
  conn: Connection,
  request: AccessRequest,
  timeoutMs: number | undefined,
): Promise<AccessRequest> {
  const round = request.extension!.round;
  const id = safe(request.id);
  const line = (r: AccessRequest) =>
    `waiting for approval of the extension of ${id} (+${safe(r.extension?.duration ?? '')}; ` +
    `${(r.extension?.reviews ?? []).filter((v) => v.decision === 'approve').length} of ${r.extension?.approvals_required ?? 0} approvals; valid until ${clockTime(Date.parse(r.expires_at))} meanwhile)`;
  const progress = await startProgress(ctx.io, line(request));
  const deadline = timeoutMs === undefined ? undefined : ctx.clock.now() + timeoutMs;
  try {
    const result = await waitForDecision(conn.client, request, {
      clock: ctx.clock,
      deadline,
      signal: ctx.interruptSignal(),
      settled: (r) =>
        r.state !== 'approved' || r.extension?.round !== round || r.extension.state !== 'pending',
      onChange: (r) => progress.update(line(r)),
    });
    progress.stop();
    if (result.outcome === 'timeout') {
      throw new StillPendingError(`the extension of ${id} is still waiting for review`, {
        hint: `it stays asked for; \`jitctl show ${id}\` shows it, \`jitctl cancel ${id}\` withdraws it`,
      });
    }
    return result.request;
  } catch (err) {
    progress.stop();
    if (err instanceof InterruptedError) {
      throw new InterruptedError(`stopped waiting; the extension of ${id} stays asked for`, {
        hint: `\`jitctl show ${id}\` shows it; \`jitctl cancel ${id}\` withdraws it`,
      });
    }
    throw err;
  }
}

async function finish(
  ctx: Context,
  conn: Connection,
  request: AccessRequest,
  json: boolean | undefined,
): Promise<number> {
  const ext = request.extension!;
  const id = safe(request.id);
  const end = Date.parse(request.expires_at);
  const now = ctx.clock.now();
  if (json) printJson(ctx.io, request);
  if (ext.state === 'pending') {
    if (!json) ctx.io.out(`${id}\n`);
    ctx.io.err(
      `asked to extend ${id} by ${safe(ext.duration)}; waiting for review. It stays valid until ${clockTime(end)} meanwhile.\n`,
    );
    return 0;
  }
  if (ext.state === 'approved') {
    // The kept credential ends at the old end: fetch one for the new window.
    const key = credentialKey(conn.server, request.role);
    const kept = decodeCredential(await conn.store.get(key));
    if (kept && kept.requestId === request.id && request.state === 'approved') {
      await conn.store.set(key, encodeCredential(await fetchCredential(conn, request)));
    }
    const by = ext.reviews.filter((r) => r.decision === 'approve').map((r) => whoShort(r.reviewer));
    ctx.io.err(
      `${style(ctx.io, 'green', '✔')} extended ${id} by ${safe(ext.duration)}${by.length > 0 ? ` (approved by ${by.join(', ')})` : ''}: valid until ${clockTime(end)} (${relative(end, now).replace(/^in /, '')} left)\n`,
    );
    return 0;
  }
  const denial = ext.reviews.find((r) => r.decision === 'deny');
  const why = denial?.comment ? ` ("${safe(denial.comment)}")` : '';
  throw new DeniedError(
    ext.state === 'denied'
      ? `the extension of ${id} was denied${denial ? ` by ${whoShort(denial.reviewer)}` : ''}${why}`
      : `the extension of ${id} ${ext.state === 'expired' ? 'lapsed: the grant ended' : `was ${ext.state}`}`,
    {
      hint:
        request.state === 'approved'
          ? `it stays valid until ${clockTime(end)}`
          : 'file a new request: jitctl request <role>',
    },
  );
}
