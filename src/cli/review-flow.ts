import type { AccessRequest, MeResponse } from '../api/schemas.js';
import { LIMITS } from '../api/schemas.js';
import { type ConnectOptions, withConnection } from './connect.js';
import type { Context } from './context.js';
import { DeniedError, ExitCode, InterruptedError, JitError, UsageError } from './errors.js';
import { clockTime, printJson, safe, style } from './output.js';
import { requestId } from './request-flow.js';
import {
  approvals,
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
    precheckReview(request, me);
    const fingerprint = options.fingerprint?.trim() ?? request.fingerprint;
    if (fingerprint !== request.fingerprint) {
      throw new JitError(
        `${safe(id)} does not match fingerprint ${safe(fingerprint)} (it is ${safe(request.fingerprint)})`,
        ExitCode.Error,
        { hint: 'this is not the request you were asked about: look at it again before reviewing' },
      );
    }
    const Verb = decision === 'approve' ? 'Approve' : 'Deny';
    if (!(await confirm(ctx, `${Verb} ${safe(id)}: ${summaryOf(request)}?`, options.yes))) {
      return ExitCode.Error;
    }
    const comment = options.comment?.trim();
    const after = await conn.client.review(id, {
      decision,
      ...(comment ? { comment } : {}),
      fingerprint,
    });
    if (options.json) printJson(ctx.io, after);
    ctx.io.err(`${style(ctx.io, 'green', '✔')} ${reviewResult(after, decision)}\n`);
    return 0;
  });
}

function precheckReview(request: AccessRequest, me: MeResponse): void {
  const id = safe(request.id);
  if (request.state !== 'pending') {
    throw new DeniedError(`${id} is ${request.state}; only pending requests can be reviewed`, {
      hint: request.state === 'approved' ? `to end it early: jitctl revoke ${id}` : undefined,
    });
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
}

function reviewResult(after: AccessRequest, decision: 'approve' | 'deny'): string {
  const id = safe(after.id);
  const requester = who(after.requester);
  if (after.state === 'approved') {
    return `approved ${id}: ${requester} has ${safe(after.role)} until ${clockTime(Date.parse(after.expires_at))}`;
  }
  if (after.state === 'denied') return `denied ${id} (${safe(after.role)} for ${requester})`;
  if (decision === 'approve') {
    return `recorded your approval of ${id}: ${approvals(after).length} of ${after.approvals_required}; it stays pending`;
  }
  return `recorded your denial of ${id} (${denials(after).length} so far); it stays pending`;
}
