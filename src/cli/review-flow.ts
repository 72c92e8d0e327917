import { ErrorCode } from '../api/errors.js';
import type { AccessRequest, MeResponse } from '../api/schemas.js';
import { LIMITS } from '../api/schemas.js';
import { type Connection, type ConnectOptions, withConnection } from './connect.js';
import type { Context } from './context.js';
import {
  ApiError,
  DeniedError,
  ExitCode,
  InterruptedError,
  JitError,
  UsageError,
} from './errors.js';
import { clockTime, printJson, safe, style } from './output.js';
import { requestId } from './request-flow.js';
import {
  approvalProgress,
  approverList,
  denials,
  detailView,
  filedBy,
  summaryOf,
  who,
} from './request-view.js';

/**
 * What `approve`, `deny` and `revoke` share: the request is shown whole before anything is
 * decided, the decision is confirmed on a terminal (and needs `--yes` without one, cli/cli's rule
 * for destructive verbs), and whatever the broker would refuse for plain reasons (not pending,
 * your own request, not an approver of the role) is said before the question is asked. The broker
 * still decides: these checks only spare a person a pointless question and a step-up sign-in.
 */

export interface ConfirmOptions extends ConnectOptions {
  id: string;
  yes?: boolean | undefined;
  json?: boolean | undefined;
}

export interface ReviewOptions extends ConfirmOptions {
  comment?: string | undefined;
  fingerprint?: string | undefined;
}

/** Refuses early when a confirmation would be needed and cannot be asked (exit 2). */
export function needConfirmation(ctx: Context, verb: string, yes: boolean | undefined): void {
  if (yes || ctx.io.canPrompt()) return;
  const why = ctx.ci ? 'CI=true means nothing is asked' : 'there is no terminal to ask on';
  throw new UsageError(`${verb} asks for confirmation, and ${why}`, {
    hint: `check the request with \`jitctl show <id>\`, then pass --yes`,
  });
}

/** Shows the request on stderr (it is the context of a question, not the command's data). */
export function showForDecision(ctx: Context, request: AccessRequest): void {
  ctx.io.err(`${detailView(request, ctx.clock.now())}\n`);
}

/** Asks on the terminal unless `--yes`; says so when the answer is no. */
export async function confirm(ctx: Context, question: string, yes: boolean | undefined) {
  if (yes) return true;
  const ok = await ctx.prompter
    .confirm(question, { default: false, orFlag: '--yes' })
    .catch((err: unknown) => {
      if (err instanceof InterruptedError)
        throw new InterruptedError('interrupted; nothing was sent');
      throw err;
    });
  if (!ok) ctx.io.err('nothing was sent\n');
  return ok;
}

export async function review(
  ctx: Context,
  decision: 'approve' | 'deny',
  options: ReviewOptions,
): Promise<number> {
  const verb = decision === 'approve' ? 'approving' : 'denying';
  const id = requestId(options.id);
  if (options.comment !== undefined && options.comment.length > LIMITS.comment) {
    throw new UsageError(
      `--comment is ${options.comment.length} characters; at most ${LIMITS.comment} fit`,
    );
  }
  if (options.fingerprint !== undefined) {
    const f = options.fingerprint.trim();
    if (f === '' || f.length > LIMITS.fingerprint || safe(f) !== f) {
      throw new UsageError(`--fingerprint ${safe(f.slice(0, 64))} is not a fingerprint`, {
        hint: '`jitctl show <id>` prints the request’s fingerprint',
      });
    }
  }
  needConfirmation(ctx, verb[0]!.toUpperCase() + verb.slice(1), options.yes);

  return withConnection(ctx, options, async (conn) => {
    const [request, me] = await Promise.all([conn.client.getRequest(id), conn.client.me()]);
    showForDecision(ctx, request);
    const target = precheckReview(request, me);
    if (target === 'break-glass') return reviewBreakGlass(ctx, conn, request, decision, options);
    const extension = target === 'extension' ? request.extension! : undefined;
    const expected = extension ? extension.fingerprint : request.fingerprint;
    const fingerprint = options.fingerprint?.trim() ?? expected;
    if (fingerprint !== expected) {
      throw new JitError(
        `${safe(id)}${extension ? "'s extension" : ''} does not match fingerprint ${safe(fingerprint)} (it is ${safe(expected)})`,
        ExitCode.Error,
        { hint: 'this is not the request you were asked about: look at it again before reviewing' },
      );
    }
    const Verb = decision === 'approve' ? 'Approve' : 'Deny';
    const question = extension
      ? `${Verb} extending ${safe(id)} by ${safe(extension.duration)} (${who(request.requester)}, ${safe(request.role)})?`
      : `${Verb} ${safe(id)}: ${summaryOf(request)}?`;
    if (!(await confirm(ctx, question, options.yes))) return ExitCode.Error;
    const comment = await commentFor(ctx, options.comment, false);
    const send = (c: string | undefined) =>
      conn.client.review(id, { decision, ...(c ? { comment: c } : {}), fingerprint });
    const after = await withComment(ctx, comment, send);
    if (options.json) printJson(ctx.io, after);
    ctx.io.err(
      `${style(ctx.io, 'green', '✔')} ${extension ? extensionResult(after, decision) : reviewResult(after, decision)}\n`,
    );
    return 0;
  });
}

type Target = 'request' | 'extension' | 'break-glass';

function precheckReview(request: AccessRequest, me: MeResponse): Target {
  const id = safe(request.id);
  const awaiting = request.awaiting ?? [];
  const target: Target | undefined =
    request.state === 'pending'
      ? 'request'
      : awaiting.includes('extension_review')
        ? 'extension'
        : awaiting.includes('break_glass_review')
          ? 'break-glass'
          : undefined;
  if (!target) {
    throw new DeniedError(
      `${id} is ${safe(request.state)}; only pending requests can be reviewed`,
      {
        hint: request.state === 'approved' ? `to end it early: jitctl revoke ${id}` : undefined,
      },
    );
  }
  if (filedBy(request, me)) {
    throw new DeniedError('you cannot review your own request', {
      hint: `ask one of ${approverList(request)} to review it`,
    });
  }
  if (!me.reviewable.includes(request.role)) {
    throw new DeniedError(`you may not review requests for role ${safe(request.role)}`, {
      hint: `its approvers are ${approverList(request)}`,
    });
  }
  return target;
}

/**
 * `approve`/`deny` on a break-glass grant awaiting its review afterwards: acknowledge it, or flag
 * it (with a comment saying what was wrong). Flagging does not end it: `jitctl revoke` does.
 */
async function reviewBreakGlass(
  ctx: Context,
  conn: Connection,
  request: AccessRequest,
  decision: 'approve' | 'deny',
  options: ReviewOptions,
): Promise<number> {
  const id = safe(request.id);
  const flag = decision === 'deny';
  const question = `${flag ? 'Flag' : 'Acknowledge'} ${who(request.requester)}'s break-glass use of ${safe(request.role)} (${id})?`;
  if (!(await confirm(ctx, question, options.yes))) return ExitCode.Error;
  const comment = await commentFor(ctx, options.comment, flag);
  const after = await withComment(ctx, comment, (c) =>
    conn.client.reviewBreakGlass(request.id, {
      verdict: flag ? 'flag' : 'acknowledge',
      ...(c ? { comment: c } : {}),
    }),
  );
  if (options.json) printJson(ctx.io, after);
  ctx.io.err(
    flag
      ? `${style(ctx.io, 'yellow', '!')} flagged ${id}; the security contacts are told. It stays active until ${clockTime(Date.parse(after.expires_at))}: end it with \`jitctl revoke ${id}\`\n`
      : `${style(ctx.io, 'green', '✔')} acknowledged the break-glass use ${id}\n`,
  );
  return 0;
}

/** `--comment`, or asked for on a terminal when it is required (flagging). */
async function commentFor(
  ctx: Context,
  given: string | undefined,
  required: boolean,
): Promise<string | undefined> {
  const comment = given?.trim();
  if (comment || !required) return comment || undefined;
  if (!ctx.io.canPrompt()) {
    throw new UsageError('flagging needs --comment: say what was wrong', {
      hint: 'e.g. --comment "no incident was open"',
    });
  }
  return ctx.prompter.input('Comment (what was wrong):', {
    orFlag: '--comment',
    validate: (v) => (v.trim() === '' ? 'a comment is required' : true),
  });
}

/** Sends; where the role requires a comment and none was given, asks for one (or names the flag). */
async function withComment(
  ctx: Context,
  comment: string | undefined,
  send: (comment: string | undefined) => Promise<AccessRequest>,
): Promise<AccessRequest> {
  try {
    return await send(comment);
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== ErrorCode.CommentRequired || comment) throw err;
    if (!ctx.io.canPrompt()) {
      throw new UsageError(err.message, { hint: 'pass --comment "why"' });
    }
    const asked = await ctx.prompter.input('Comment (this role requires one):', {
      orFlag: '--comment',
      validate: (v) => (v.trim() === '' ? 'a comment is required' : true),
    });
    return send(asked);
  }
}

function extensionResult(after: AccessRequest, decision: 'approve' | 'deny'): string {
  const id = safe(after.id);
  const ext = after.extension;
  if (ext?.state === 'approved') {
    return `extended ${id} by ${safe(ext.duration)}: ${who(after.requester)} has ${safe(after.role)} until ${clockTime(Date.parse(after.expires_at))}`;
  }
  if (ext?.state === 'denied')
    return `denied extending ${id}; it ends at ${clockTime(Date.parse(after.expires_at))}`;
  const n = (ext?.reviews ?? []).filter((r) => r.decision === 'approve').length;
  return decision === 'approve'
    ? `recorded your approval of extending ${id}: ${n} of ${ext?.approvals_required ?? 0}; it stays pending`
    : `recorded your denial of extending ${id}; it stays pending`;
}

function reviewResult(after: AccessRequest, decision: 'approve' | 'deny'): string {
  const id = safe(after.id);
  const requester = who(after.requester);
  if (after.state === 'approved') {
    return `approved ${id}: ${requester} has ${safe(after.role)} until ${clockTime(Date.parse(after.expires_at))}`;
  }
  if (after.state === 'scheduled') {
    return `approved ${id}: ${requester} has ${safe(after.role)} from ${clockTime(Date.parse(after.starts_at ?? after.expires_at))} until ${clockTime(Date.parse(after.expires_at))}`;
  }
  if (after.state === 'denied') return `denied ${id} (${safe(after.role)} for ${requester})`;
  if (decision === 'approve') {
    const progress = after.approvals_by
      ? approvalProgress(after)
      : `${after.reviews.filter((r) => r.decision === 'approve').length} of ${after.approvals_required}`;
    return `recorded your approval of ${id}: ${progress}; it stays pending`;
  }
  return `recorded your denial of ${id} (${denials(after).length} so far); it stays pending`;
}
