import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import { printJson, safe, style } from '../cli/output.js';
import {
  awaitOutcome,
  checkRequestInput,
  durationFlag,
  fileRequest,
  finishOutcome,
  outcomeJson,
  rememberScheduled,
} from '../cli/request-flow.js';
import { progressOf } from '../cli/request-view.js';
import { startFlag } from '../cli/start-time.js';
import { credentialKey } from '../credentials/records.js';

/**
 * `jitctl request <role> [--for 15m] [--reason TEXT] [--ticket ID] [--at TIME | --in D]
 * [--break-glass] [--no-wait] [--timeout D]`: file a request, then (by default) wait on the broker's
 * long poll until it is decided; once approved, fetch the credential and keep it in the credential
 * store. A scheduled request (`--at`, `--in`) returns once approved; `jitctl wait` fetches its
 * credential from the start. Exit codes: 3 when denied,
 * cancelled or expired; 5 when still pending at `--timeout`; 130 at Ctrl-C (the request stays
 * filed and `jitctl wait <id>` resumes).
 */
export interface Options extends ConnectOptions {
  role: string;
  for?: string | undefined;
  reason?: string | undefined;
  ticket?: string | undefined;
  /** false with --no-wait. */
  wait?: boolean | undefined;
  timeout?: string | undefined;
  json?: boolean | undefined;
  /** `--at 14:00` or RFC 3339: a scheduled start. */
  at?: string | undefined;
  /** `--in 2h`: a scheduled start from now. */
  in?: string | undefined;
  /** `--break-glass`: approved at once, reviewed afterwards (roles with `break_glass`). */
  breakGlass?: boolean | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const startsAt = startFlag(options.at, options.in, ctx.clock.now());
  if (options.breakGlass && startsAt !== undefined) {
    throw new UsageError('break-glass access starts now; it cannot be scheduled', {
      hint: 'drop --at/--in, or drop --break-glass for a scheduled request',
    });
  }
  if (options.breakGlass && (options.reason === undefined || options.reason.trim() === '')) {
    if (!ctx.io.canPrompt()) {
      throw new UsageError('--break-glass needs --reason: say what is on fire', {
        hint: `e.g. jitctl request ${safe(options.role)} --break-glass --reason "INC-4211: checkout down"`,
      });
    }
  }
  const input = {
    role: options.role,
    duration: options.for,
    reason: options.reason,
    ticket: options.ticket,
    startsAt,
    breakGlass: options.breakGlass,
  };
  // Everything that can be checked here is, before a broker or a keychain is touched.
  checkRequestInput(input);
  const timeoutMs = durationFlag('--timeout', options.timeout);
  const wait = options.wait !== false;
  if (!wait && timeoutMs !== undefined) {
    throw new UsageError('--timeout is for waiting, and --no-wait does not wait', {
      hint: 'drop one of them',
    });
  }

  return withConnection(ctx, options, async (conn) => {
    // The credential is kept at the end: a store that cannot be used (no keychain on a CI runner
    // signed in by JITCTL_FEDERATED_TOKEN) must fail now, not after someone has approved.
    await conn.store.get(credentialKey(conn.server, input.role));
    const request = await fileRequest(ctx, conn, input);
    const id = safe(request.id);
    if (request.break_glass) {
      ctx.io.err(
        `${style(ctx.io, 'yellow', '!')} break-glass: ${id} is approved now and will be reviewed by an approver afterwards; the security contacts are told\n`,
      );
    }
    // Approved at once (a role that needs no approval) is worth its credential even with --no-wait.
    if (!wait && (request.state === 'pending' || request.state === 'scheduled')) {
      if (request.state === 'scheduled') await rememberScheduled(conn, request);
      if (options.json) printJson(ctx.io, outcomeJson(request));
      else ctx.io.out(`${id}\n`);
      ctx.io.err(
        `filed ${id} for ${safe(request.role)} (${safe(request.duration)}): ${request.state}, ${progressOf(request, ctx.clock.now())}\n` +
          `  wait for it: jitctl wait ${id}\n`,
      );
      return 0;
    }
    const outcome = await awaitOutcome(ctx, conn, request, { timeoutMs, keep: 'store' });
    return finishOutcome(ctx, outcome, options.json);
  });
}
