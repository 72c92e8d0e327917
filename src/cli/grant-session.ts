import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { UseReport } from '../api/grant.js';
import { commandForAudit } from '../api/redact-command.js';
import { checkGrant } from '../client/grant-check.js';
import { errorFromBody } from '../client/http.js';
import { lightRequest } from '../client/light-http.js';
import {
  type CredentialRecord,
  decodeSession,
  grantEndOf,
  sessionKey,
  useOf,
} from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';
import type { RunningCommand } from '../exec/run-command.js';
import type { Context } from './context.js';
import { ApiError, JitError, UnreachableError } from './errors.js';
import { grantEtagOf, revokedLine } from './hand-over.js';
import { clockTime, safe } from './output.js';
import { dropQueued, queuedUses, queueUse } from './use-queue.js';

/**
 * What `jitctl exec` and `shell` do beside the command they run under a grant:
 *
 * - **Follow the grant** with the broker's long poll (`GET /v1/credential/status?wait=…`, which
 *   costs nothing while idle). A revocation reaches the command within moments: who revoked it
 *   and why on stderr, then the whole command tree is ended (TERM, KILL after the grace), unless
 *   the role says `on_revoke: warn`. An extension moves the end (the notices, `--kill-at-expiry`,
 *   the shell's prompt).
 * - **Report the use** (`POST /v1/requests/:id/uses`): the start and the end of the command, with
 *   the command as the role's `audit_commands` allows, host, user, directory, exit status or
 *   signal. A report that cannot reach the broker is queued and sent by a later command; the role
 *   may require the start to be reported before the command runs (`audit_commands_required`).
 *
 * Neither is allowed to stop or slow down the command otherwise: they run in the background and
 * jitctl waits for the end report a few seconds at most before queueing it.
 */

export interface GrantSessionSpec {
  record: CredentialRecord;
  server: string;
  /** The store the credential came from (already open): the session for the reports. */
  store: CredentialStore | undefined;
  kind: 'exec' | 'shell';
  /** The command as run (exec's argv; the shell's path). */
  argv: string[];
  /** Told when the grant's end moves (an extension), with the new end (ms since the epoch). */
  onNewEnd?: ((endMs: number) => void) | undefined;
  /** How long each long poll may be held (default 50 s; tests shorten it). */
  followWaitMs?: number | undefined;
}

/** How long a long poll may be held (the broker caps it at 60 s). */
const FOLLOW_WAIT_MS = 50_000;
/** The end report gets this long before it is queued for later. */
const END_REPORT_MS = 4_000;
const MAX_BACKOFF_MS = 10_000;

export interface GrantSession {
  /** Before the command starts: the start report, awaited when the role requires it. */
  beforeStart(): Promise<void>;
  /** CommandSpec.watch: follows the grant while the command runs. */
  watch(command: RunningCommand): () => void;
  /** CommandSpec.onExit */
  onExit(code: number | null, signal: NodeJS.Signals | null): void;
  /** After the command: the end report (or queued), and the reports waiting from before. */
  finish(): Promise<void>;
}

export function startGrantSession(ctx: Context, spec: GrantSessionSpec): GrantSession {
  const { record } = spec;
  const use = useOf(record);
  const startedAt = ctx.clock.now();
  const useId = randomBytes(12).toString('base64url');
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let endedBy: string | null = null;
  let startSent: Promise<boolean> | undefined;
  // The token and every value of the role's env are never reported, whatever the command held.
  const known = [record.token.reveal(), ...Object.values(record.env).map((v) => v.reveal())];
  const base = {
    use_id: useId,
    kind: spec.kind,
    ...(record.jti ? { jti: record.jti } : {}),
    host: safeHost(),
    os_user: osUser(ctx),
    cwd: workingDirectory(),
    ...commandOf(spec.argv, use.audit_commands, known),
    started_at: new Date(startedAt).toISOString(),
  } satisfies Partial<UseReport>;

  let connection: Promise<import('./connect.js').Connection> | undefined;
  /** The stored session's token, read once (a file store decrypts on every read). */
  let bearer: Promise<string | undefined> | undefined;
  const connected = () => {
    connection ??= (async () => {
      if (!spec.store) throw new UnreachableError('no credential store to sign in with');
      const { connectOver } = await import('./connect.js');
      return connectOver(ctx, spec.server, spec.store);
    })();
    return connection;
  };

  /**
   * Sends one report. With a session token good for a while yet, on Node's own http module (no
   * API client to load on every exec); otherwise, or when the broker refuses the token, through
   * the API client, which renews the session first.
   */
  const send = async (report: UseReport, requestId = record.requestId): Promise<void> => {
    const path = `/v1/requests/${encodeURIComponent(requestId)}/uses`;
    bearer ??= sessionBearer(ctx, spec);
    const token = await bearer;
    if (token) {
      const a = await lightRequest({
        method: 'POST',
        url: new URL(path, spec.server),
        headers: { authorization: `Bearer ${token}` },
        body: report,
        timeoutMs: END_REPORT_MS,
      });
      if (a.kind === 'unavailable') throw new UnreachableError(a.reason);
      if (a.status === 200 || a.status === 201) return;
      if (a.status !== 401) throw errorFromBody(a.status, a.text, spec.server);
    }
    const conn = await connected();
    await conn.client.call('POST', path, {
      body: report,
      idempotent: true,
      attempts: 2,
      readTimeoutMs: END_REPORT_MS,
    });
  };

  const queue = async (report: UseReport, why: string) => {
    try {
      await queueUse(ctx, {
        server: spec.server,
        requestId: record.requestId,
        report: { ...report, queued_at: new Date(ctx.clock.now()).toISOString() },
      });
      ctx.io.err(
        `jitctl: could not report this ${spec.kind === 'shell' ? 'shell' : 'command'}'s ${report.event} to the broker (${safe(why)}); ` +
          'it is kept and sent by your next jitctl exec or shell\n',
      );
    } catch (err) {
      ctx.io.err(
        `jitctl: could not report this ${spec.kind === 'shell' ? 'shell' : 'command'}'s ${report.event} to the broker (${safe(why)}), nor keep it for later: ${safe((err as Error).message)}\n`,
      );
    }
  };

  /** Reports that waited from earlier commands, once the broker answers again. */
  const flush = async () => {
    for (const { file, use: q } of await queuedUses(ctx, spec.server)) {
      try {
        await send(q.report, q.requestId);
        await dropQueued(file);
      } catch (err) {
        // Refused for good (not the requester's, no such request, malformed): never sendable.
        if (
          err instanceof ApiError &&
          err.status >= 400 &&
          err.status < 500 &&
          err.status !== 401 &&
          err.status !== 408 &&
          err.status !== 429
        ) {
          await dropQueued(file);
          continue;
        }
        return;
      }
    }
  };

  const startReport = (): UseReport => ({ ...base, event: 'start' }) as UseReport;

  return {
    async beforeStart() {
      if (use.audit_commands_required) {
        try {
          await send(startReport());
        } catch (err) {
          const why = err instanceof JitError ? err.message : String(err);
          throw new JitError(
            `the role ${safe(record.role)} requires each command to be reported to the broker before it runs, and the report failed: ${why}`,
            err instanceof JitError ? err.exitCode : 1,
            { hint: err instanceof JitError ? err.hint : undefined },
          );
        }
        startSent = Promise.resolve(true);
        return;
      }
      startSent = send(startReport()).then(
        () => true,
        async (err: unknown) => {
          await queue(startReport(), reason(err));
          return false;
        },
      );
    },

    watch(running) {
      const stop = new AbortController();
      void follow(ctx, spec, running, stop.signal, (by) => {
        endedBy = by;
      });
      return () => stop.abort();
    },

    onExit(code, signal) {
      exit = { code, signal };
    },

    async finish() {
      // The start report first (a slow one queues itself), for at most as long as the end's.
      const sent = await withTimeout(startSent ?? Promise.resolve(false), END_REPORT_MS).catch(
        () => false,
      );
      const end: UseReport = {
        ...base,
        event: 'end',
        ended_at: new Date(ctx.clock.now()).toISOString(),
        exit_code: exit?.code ?? null,
        signal: exit?.signal ?? null,
        ...(endedBy ? { ended_by: endedBy } : {}),
      } as UseReport;
      try {
        await withTimeout(send(end), END_REPORT_MS);
        if (sent) await withTimeout(flush(), END_REPORT_MS);
      } catch (err) {
        await queue(end, reason(err));
      } finally {
        if (connection) await (await connection.catch(() => undefined))?.client.close();
      }
    },
  };
}

/** Follows the grant until the command is over (or there is nothing left to follow). */
async function follow(
  ctx: Context,
  spec: GrantSessionSpec,
  running: RunningCommand,
  signal: AbortSignal,
  onEnd: (by: string) => void,
): Promise<void> {
  const { record } = spec;
  // Where the check before the command left off (or, without one, an immediate first answer).
  let etag = grantEtagOf(record);
  let end = grantEndOf(record);
  let failures = 0;
  let warned = false;
  while (!signal.aborted) {
    const a = await checkGrant({
      server: spec.server,
      token: record.token.reveal(),
      waitMs: etag === undefined ? undefined : (spec.followWaitMs ?? FOLLOW_WAIT_MS),
      etag,
      timeoutMs: 15_000,
      signal,
    });
    if (signal.aborted) return;
    if (a.kind === 'status') {
      if (warned) ctx.io.err('jitctl: the broker answers again; following the grant\n');
      failures = 0;
      warned = false;
      etag = a.etag;
      const s = a.status;
      if (s.state === 'revoked' && s.revoked) {
        const line = revokedLine(record.role, record.requestId, s.revoked, ctx.clock.now());
        if (s.use.on_revoke === 'warn') {
          ctx.io.err(
            `\njitctl: ${line}\njitctl: the command keeps running (the role says on_revoke: warn), but no fresh credential will be minted\n`,
          );
        } else {
          onEnd('revoked');
          void running.end(line);
        }
        return;
      }
      const next = Date.parse(s.expires_at);
      if (s.active && next !== end) {
        end = next;
        running.moveExpiry(end);
        spec.onNewEnd?.(end);
        ctx.io.err(`\njitctl: the grant for ${safe(record.role)} now ends at ${clockTime(end)}\n`);
      }
      if (!s.active) return; // it ended: the expiry timers say so
      continue;
    }
    if (a.kind === 'refused') {
      ctx.io.err(
        `\njitctl: cannot follow the grant for ${safe(record.role)}: ${safe(a.message)}; a revocation will not end this command\n`,
      );
      return;
    }
    failures++;
    if (failures === 3 && !warned) {
      warned = true;
      ctx.io.err(
        `\njitctl: cannot reach the broker to follow the grant for ${safe(record.role)} (${safe(a.reason)}); retrying\n`,
      );
    }
    const delay = a.retryAfterMs ?? Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 6));
    try {
      await ctx.clock.sleep(delay, signal);
    } catch {
      return;
    }
  }
}

/** The stored session's token when it is good for another minute at least; else undefined. */
async function sessionBearer(ctx: Context, spec: GrantSessionSpec): Promise<string | undefined> {
  if (!spec.store) return undefined;
  try {
    const session = decodeSession(await spec.store.get(sessionKey(spec.server)));
    if (!session || session.expiresAt - ctx.clock.now() < 60_000) return undefined;
    return session.bearer.reveal();
  } catch {
    return undefined;
  }
}

function commandOf(
  argv: string[],
  mode: 'none' | 'name' | 'full',
  known: string[],
): { command?: string[] } {
  const command = commandForAudit(argv, mode, known);
  return command ? { command } : {};
}

function workingDirectory(): string {
  try {
    return process.cwd();
  } catch {
    return '(removed)';
  }
}

function safeHost(): string {
  try {
    return hostname().slice(0, 255);
  } catch {
    return 'unknown';
  }
}

function osUser(ctx: Context): string {
  try {
    return userInfo().username.slice(0, 255);
  } catch {
    return (ctx.env.USER ?? ctx.env.LOGNAME ?? 'unknown').slice(0, 255);
  }
}

function reason(err: unknown): string {
  if (err instanceof JitError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new UnreachableError('the broker did not answer in time')),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
