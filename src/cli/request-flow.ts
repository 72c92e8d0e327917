import { randomUUID } from 'node:crypto';
import { DURATION_HINT, DurationError, parseDuration } from '../api/duration.js';
import { ErrorCode } from '../api/errors.js';
import { reviewPageUrl } from '../api/links.js';
import { type AccessRequest, LIMITS } from '../api/schemas.js';
import { waitForDecision } from '../client/await-approval.js';
import {
  type CredentialRecord,
  credentialKey,
  credentialRecordOf,
  encodeCredential,
  encodeScheduled,
  grantEndOf,
  scheduledKey,
} from '../credentials/records.js';
import type { Connection } from './connect.js';
import type { Context } from './context.js';
import {
  ApiError,
  DeniedError,
  InterruptedError,
  JitError,
  StillPendingError,
  UsageError,
} from './errors.js';
import { clockTime, printJson, relative, safe, style } from './output.js';
import { type Progress, startProgress } from './progress.js';
import { approvals, endingOf, progressOf, waitingLine, whoShort } from './request-view.js';

/**
 * Filing a request and waiting for its outcome, shared by `jitctl request`, `jitctl wait` and
 * `jitctl exec --request` (which calls {@link requestAccess}). The waiting itself (long poll,
 * surviving broker restarts) is src/client/await-approval.ts; this module adds what a person
 * sees (spinner or plain lines on stderr), the credential store, and the exit codes of the README:
 * 3 when the request ends without approval, 5 at `--timeout`, 130 at Ctrl-C, with the command
 * that resumes printed each time the request is still filed.
 */

/** What `jitctl request` files. `duration` is the `--for` text, already checked locally. */
export interface RequestInput {
  role: string;
  duration?: string | undefined;
  reason?: string | undefined;
  ticket?: string | undefined;
  /** A scheduled start (ms), from `--at` or `--in`. */
  startsAt?: number | undefined;
  /** `--break-glass`: approved at once, reviewed afterwards (needs a reason). */
  breakGlass?: boolean | undefined;
}

/**
 * A duration flag, checked with the broker's own parser before anything goes on the wire:
 * "`--for 15x`: durations look like 15m, 1h30m, 90s or 2d" (exit 2).
 */
export function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value);
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    const shown = safe(err.input);
    const why = err.reason.startsWith('is not a duration')
      ? `: ${DURATION_HINT}`
      : ` ${err.reason}`;
    throw new UsageError(`\`${flag} ${shown}\`${why}`, {
      hint: `e.g. ${flag} 15m or ${flag} 1h30m`,
    });
  }
}

/**
 * A request id from the command line. Only the obvious is refused here (empty, absurdly long,
 * control characters); the broker answers anything else with "no request …".
 */
export function requestId(value: string): string {
  const id = value.trim();
  if (id === '')
    throw new UsageError('the request id is empty', { hint: 'ids look like req_7Hq2Xn4pQr9a' });
  if (id.length > 100 || safe(id) !== id) {
    throw new UsageError(`${safe(id.slice(0, 100))} is not a request id`, {
      hint: 'ids look like req_7Hq2Xn4pQr9a; `jitctl list` shows them',
    });
  }
  return id;
}

/** Local checks of `jitctl request`'s input: the same limits the broker applies, said earlier. */
export function checkRequestInput(input: RequestInput): void {
  if (input.role.trim() === '') {
    throw new UsageError('the role is empty', { hint: 'name a role, e.g. prod-deploy' });
  }
  if (input.role.length > LIMITS.role) {
    throw new UsageError(`the role name is longer than ${LIMITS.role} characters`);
  }
  durationFlag('--for', input.duration);
  if (input.reason !== undefined && input.reason.length > LIMITS.reason) {
    throw new UsageError(
      `--reason is ${input.reason.length} characters; at most ${LIMITS.reason} fit`,
      { hint: 'put the details in a ticket and pass --ticket' },
    );
  }
  if (input.ticket !== undefined && input.ticket.length > LIMITS.ticket) {
    throw new UsageError(`--ticket is longer than ${LIMITS.ticket} characters`);
  }
}

/**
 * Files the request with a fresh Idempotency-Key (the client's retries reuse it, so a retried
 * POST never files twice). Where the role needs a reason and none was given, asks for one on a
 * terminal and says which flag to use otherwise (exit 2).
 */
export async function fileRequest(
  ctx: Context,
  conn: Connection,
  input: RequestInput,
): Promise<AccessRequest> {
  checkRequestInput(input);
  const body = {
    role: input.role,
    ...(input.duration !== undefined ? { duration: input.duration } : {}),
    ...(input.reason !== undefined && input.reason !== '' ? { reason: input.reason } : {}),
    ...(input.ticket !== undefined && input.ticket !== '' ? { ticket: input.ticket } : {}),
    ...(input.startsAt !== undefined ? { starts_at: new Date(input.startsAt).toISOString() } : {}),
    ...(input.breakGlass ? { break_glass: true } : {}),
  };
  try {
    return await conn.client.createRequest(body, randomUUID());
  } catch (err) {
    if (err instanceof ApiError && err.code === ErrorCode.DurationTooLong) {
      throw await durationTooLong(conn, input, err);
    }
    if (!(err instanceof ApiError) || err.code !== ErrorCode.ReasonRequired) throw err;
    if (input.reason !== undefined && input.reason.trim() !== '') throw err;
    if (!ctx.io.canPrompt()) {
      throw new UsageError(err.message, {
        hint: `pass --reason, e.g. jitctl request ${safe(input.role)} --reason "hotfix INC-4211"`,
      });
    }
    const reason = await ctx.prompter
      .input(
        input.breakGlass
          ? 'Reason (break-glass: what is on fire; shown to the approvers):'
          : 'Reason (shown to the reviewers):',
        {
          orFlag: '--reason',
          validate: (v) =>
            v.trim() === ''
              ? 'a reason is required for this role'
              : v.length > LIMITS.reason
                ? `at most ${LIMITS.reason} characters`
                : true,
        },
      )
      .catch((err: unknown) => {
        if (err instanceof InterruptedError) {
          throw new InterruptedError('interrupted; nothing was filed', {
            hint: `give the reason as a flag: jitctl request ${safe(input.role)} --reason "…"`,
          });
        }
        throw err;
      });
    // A new key: the first attempt was refused, so nothing is filed under the old one, and this
    // is a different request body.
    return conn.client.createRequest({ ...body, reason }, randomUUID());
  }
}

/**
 * The broker's "duration too long", said in the flag the person typed: "`--for 100h` is longer
 * than the maximum of 1h for prod-deploy". The maximum comes from the role (GET /v1/roles); the
 * broker's own words are the fallback.
 */
async function durationTooLong(
  conn: Connection,
  input: RequestInput,
  err: ApiError,
): Promise<JitError> {
  const role = safe(input.role);
  if (input.duration === undefined) return err;
  const summary = await conn.client
    .roles()
    .then((r) => r.roles.find((x) => x.name === input.role))
    .catch(() => undefined);
  const max = summary?.max_duration ?? /maximum of (\S+)/.exec(err.message)?.[1];
  if (max === undefined) return err;
  return new UsageError(
    `\`--for ${safe(input.duration)}\` is longer than the maximum of ${safe(max)} for ${role}`,
    { hint: `ask for ${safe(max)} or less, e.g. jitctl request ${role} --for ${safe(max)}` },
  );
}

/** How the credential of an approved request is kept. */
export type Keep =
  /** In the credential store, under credentialKey(server, role) (`request`, `wait`). */
  | 'store'
  /** Returned only (`exec --request --no-store`). */
  | 'memory'
  /** Not fetched at all (someone else's request: a reviewer waiting on it). */
  | 'none';

export type Outcome =
  | { kind: 'approved'; request: AccessRequest; credential: CredentialRecord | undefined }
  /** Approved, with a window that opens later: nothing to fetch yet. */
  | { kind: 'scheduled'; request: AccessRequest }
  | { kind: 'ended'; request: AccessRequest }
  | { kind: 'timeout'; request: AccessRequest };

export interface AwaitOptions {
  /** Stop waiting after this long (exit 5; the request stays filed). */
  timeoutMs?: number | undefined;
  keep: Keep;
  /** Keep waiting through a scheduled start, then fetch the credential (`jitctl wait`). */
  throughStart?: boolean | undefined;
}

/**
 * Waits for the outcome of `request` with progress on stderr, then, once approved, fetches the
 * credential and keeps it as asked. Ctrl-C throws InterruptedError (exit 130) naming the command
 * that resumes; every other outcome is returned, for the caller to print (JSON) and turn into an
 * exit code with {@link outcomeError}.
 */
export async function awaitOutcome(
  ctx: Context,
  conn: Connection,
  request: AccessRequest,
  opts: AwaitOptions,
): Promise<Outcome> {
  const { clock, io } = ctx;
  const id = safe(request.id);
  // The approvers' link, the one notifications carry: paste it where they will see it.
  if (request.state === 'pending')
    io.err(`review page for the approvers: ${reviewPageUrl(conn.server, request.id)}\n`);
  // What the first line says depends on where the request is: only a pending one is waited for.
  const progress: Progress =
    request.state === 'pending'
      ? await startProgress(io, waitingLine(request, clock.now()))
      : request.state === 'approved' && opts.keep !== 'none'
        ? await startProgress(
            io,
            `${id} is approved${approvedBy(request)}; fetching its credential`,
          )
        : quietProgress(io);
  let latest = request;
  let outage = false;
  const line = () =>
    outage
      ? `broker unreachable, retrying… (${id} stays filed; Ctrl-C stops waiting)`
      : waitingLine(latest, clock.now());
  // On a terminal the spinner's "expires in" counts down; plain output gets a line per change only.
  const ticker = io.color ? setInterval(() => progress.update(line()), 1000) : undefined;
  ticker?.unref();
  const deadline = opts.timeoutMs === undefined ? undefined : clock.now() + opts.timeoutMs;
  // While waiting, the store checks what keeping the credential needs (the file store's
  // passphrase), so that an approval lands sooner.
  if (opts.keep === 'store') conn.store.prepareWrite?.().catch(() => {});
  let result: Awaited<ReturnType<typeof waitForDecision>>;
  try {
    result = await waitForDecision(conn.client, request, {
      clock,
      deadline,
      ...(opts.throughStart
        ? { settled: (r) => r.state !== 'pending' && r.state !== 'scheduled' }
        : {}),
      signal: ctx.interruptSignal(),
      onChange: (r) => {
        latest = r;
        if (r.state === 'pending' || r.state === 'scheduled') progress.update(line());
      },
      onUnreachable: () => {
        outage = true;
        progress.update(line());
      },
      onReachable: () => {
        outage = false;
        progress.update(line());
      },
    });
  } catch (err) {
    clearInterval(ticker);
    progress.stop();
    if (err instanceof InterruptedError) {
      throw new InterruptedError(`stopped waiting; ${id} is still filed`, {
        hint: `resume with \`jitctl wait ${id}\` (or withdraw it: \`jitctl cancel ${id}\`)`,
      });
    }
    throw err;
  }
  clearInterval(ticker);
  const now = clock.now();
  if (result.outcome === 'timeout') {
    progress.stop();
    return { kind: 'timeout', request: result.request };
  }
  const decided = result.request;
  if (decided.state === 'scheduled') {
    if (opts.keep === 'store') await rememberScheduled(conn, decided);
    progress.succeed(`${id} approved${approvedBy(decided)} · ${progressOf(decided, now)}`);
    io.err(
      `${style(io, 'dim', `  from then: jitctl wait ${id}   (it waits for the start and fetches the credential)`)}\n`,
    );
    return { kind: 'scheduled', request: decided };
  }
  if (decided.state !== 'approved') {
    // Said once, by the error the caller turns this outcome into (outcomeError).
    progress.stop();
    return { kind: 'ended', request: decided };
  }
  if (opts.keep === 'none') {
    progress.succeed(`${id} approved${approvedBy(decided)} · ${progressOf(decided, now)}`);
    return { kind: 'approved', request: decided, credential: undefined };
  }
  let credential: CredentialRecord;
  try {
    credential = await fetchCredential(conn, decided);
    if (opts.keep === 'store') {
      await conn.store.set(
        credentialKey(conn.server, credential.role),
        encodeCredential(credential),
      );
      await conn.store.delete(scheduledKey(conn.server, credential.role));
    }
  } catch (err) {
    progress.stop();
    if (err instanceof InterruptedError) {
      throw new InterruptedError(`stopped before the credential of ${id} was fetched`, {
        hint: `${id} is approved: \`jitctl wait ${id}\` fetches its credential`,
      });
    }
    if (err instanceof JitError) {
      throw new JitError(
        `${id} is approved, but its credential was not kept: ${err.message}`,
        err.exitCode,
        {
          hint: err.hint ?? `\`jitctl wait ${id}\` tries again`,
          cause: err,
        },
      );
    }
    throw err;
  }
  // The grant's end: jitctl mints a fresh credential until then (the role's credential.ttl).
  const end = grantEndOf(credential);
  const after = clock.now();
  progress.succeed(
    `approved${approvedBy(decided)} · credential valid until ${clockTime(end)} (${relative(end, after).replace(/^in /, '')})`,
  );
  if (opts.keep === 'store') {
    io.err(
      `${style(io, 'dim', `  use it: jitctl exec ${safe(credential.role)} -- <command>   (or: jitctl shell ${safe(credential.role)})`)}\n`,
    );
  }
  return { kind: 'approved', request: decided, credential };
}

/** No waiting line, only the outcome: for a request that is already decided when the wait begins. */
function quietProgress(io: Context['io']): Progress {
  return {
    update: () => {},
    succeed: (t) => io.err(`${style(io, 'green', '✔')} ${t}\n`),
    fail: (t) => io.err(`${style(io, 'red', '✖')} ${t}\n`),
    stop: () => {},
  };
}

/** Notes a scheduled grant in the store (no secret in it) so `jitctl status` shows it offline. */
export async function rememberScheduled(conn: Connection, request: AccessRequest): Promise<void> {
  if (!request.starts_at) return;
  await conn.store.set(
    scheduledKey(conn.server, request.role),
    encodeScheduled({
      role: request.role,
      requestId: request.id,
      startsAt: request.starts_at,
      expiresAt: request.expires_at,
    }),
  );
}

function approvedBy(request: AccessRequest): string {
  const by = approvals(request).map((r) => whoShort(r.reviewer));
  if (by.length > 0) return ` by ${by.join(', ')}`;
  if (request.decided_by_rule) return ` by rule ${safe(request.decided_by_rule)}`;
  if (request.break_glass) return ' (break-glass: to be reviewed afterwards)';
  return request.approvals_required === 0 ? ' (no review needed)' : '';
}

/** Mints the credential of an approved request (POST /credential) as a store record. */
export async function fetchCredential(
  conn: Connection,
  request: Pick<AccessRequest, 'id' | 'role'>,
): Promise<CredentialRecord> {
  const minted = await conn.client.credential(request.id);
  return credentialRecordOf(request.role, request.id, minted, Date.now());
}

/** The exit of an outcome: nothing for approved, exit 3 for an ending, exit 5 at the timeout. */
export function outcomeError(outcome: Outcome, now: number): JitError | undefined {
  const id = safe(outcome.request.id);
  switch (outcome.kind) {
    case 'approved':
    case 'scheduled':
      return undefined;
    case 'ended':
      return new DeniedError(endingOf(outcome.request), {
        hint:
          outcome.request.state === 'revoked' || outcome.request.state === 'denied'
            ? 'ask the reviewer, or file a new request'
            : 'file a new request',
      });
    case 'timeout':
      return new StillPendingError(`${id} is still pending (${progressOf(outcome.request, now)})`, {
        hint: `it stays filed: resume with \`jitctl wait ${id}\`, or withdraw it with \`jitctl cancel ${id}\``,
      });
  }
}

/** The `--json` document of `request` and `wait` (docs/cli.md); never a token. */
export interface OutcomeJson {
  request: AccessRequest;
  /** Present once approved and fetched: where it is and until when, not its value. */
  credential: {
    role: string;
    request_id: string;
    expires_at: string;
    /** The variables `jitctl exec` sets from it (names only). */
    env: string[];
  } | null;
}

export function outcomeJson(request: AccessRequest, credential?: CredentialRecord): OutcomeJson {
  return {
    request,
    credential: credential
      ? {
          role: credential.role,
          request_id: credential.requestId,
          expires_at: credential.expiresAt,
          env: Object.keys(credential.env),
        }
      : null,
  };
}

/**
 * How `request` and `wait` end: the outcome as JSON on stdout with `--json`, then success for an
 * approval, or the outcome's error (exit 3 for an ending, 5 at the timeout).
 */
export function finishOutcome(ctx: Context, outcome: Outcome, json: boolean | undefined): number {
  if (json) {
    printJson(
      ctx.io,
      outcomeJson(outcome.request, outcome.kind === 'approved' ? outcome.credential : undefined),
    );
  }
  const err = outcomeError(outcome, ctx.clock.now());
  if (err) throw err;
  return 0;
}

/**
 * File a request and wait for its credential: what `jitctl exec --request` and
 * `jitctl shell --request` run when no credential is active. Returns the credential (stored
 * unless `keep` is 'memory'), or throws the outcome's error (exit 3, 5 or 130).
 */
export async function requestAccess(
  ctx: Context,
  conn: Connection,
  input: RequestInput,
  opts: { timeoutMs?: number | undefined; keep: 'store' | 'memory' },
): Promise<CredentialRecord> {
  const request = await fileRequest(ctx, conn, input);
  ctx.io.err(`filed ${safe(request.id)} for ${safe(request.role)} (${safe(request.duration)})\n`);
  const outcome = await awaitOutcome(ctx, conn, request, opts);
  const err = outcomeError(outcome, ctx.clock.now());
  if (err) throw err;
  if (outcome.kind !== 'approved' || !outcome.credential) {
    throw new JitError(`${safe(request.id)} is approved but no credential was fetched`);
  }
  return outcome.credential;
}
