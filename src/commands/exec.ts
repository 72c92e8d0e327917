import type { Context } from '../cli/context.js';
import { ExitCode, JitError, UsageError } from '../cli/errors.js';
import { startGrantSession } from '../cli/grant-session.js';
import { handOver } from '../cli/hand-over.js';
import { safe } from '../cli/output.js';
import {
  activeCredential,
  commandEnvironment,
  NoCredentialError,
  openCredentialSource,
} from '../credentials/active.js';
import { type CredentialRecord, grantEndOf, useOf } from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';
import { keepIgnored } from '../exec/inherited-signals.js';
import { resolveCommand } from '../exec/resolve-command.js';
import { type CommandSpec, runCommand } from '../exec/run-command.js';
import { shellQuote } from './credential.js';

/**
 * `jitctl exec [role] -- command [args…]`: run a command with the credential in its environment
 * and nowhere else (aws-vault's exec). The credential never goes on a command line; jitctl waits,
 * passes signals on as sudo does, and exits with the command's code, or dies of the signal that
 * killed it (src/exec/run-command.ts).
 */

/** The flags exec and shell share: which credential, and how to get one with `--request`. */
export interface UseOptions {
  role?: string | undefined;
  server?: string | undefined;
  /** A store kind, or false for --no-store. */
  store?: string | boolean | undefined;
  request?: boolean | undefined;
  for?: string | undefined;
  reason?: string | undefined;
  ticket?: string | undefined;
  allowNested?: boolean | undefined;
}

export interface Options extends UseOptions {
  /** Everything after `--`. */
  command: string[];
  /** Words after the role but before `--` (a command given without `--`). */
  misplaced?: string[] | undefined;
  killAtExpiry?: boolean | undefined;
}

export const EXEC_USAGE = 'jitctl exec [role] -- command [args…]';

export async function run(options: Options, ctx: Context): Promise<number> {
  if (options.misplaced && options.misplaced.length > 0) {
    const words = [...options.misplaced, ...options.command].map(shellWord).join(' ');
    throw new UsageError(
      `put -- before the command to run (jitctl's own options go before it): ${EXEC_USAGE}`,
      {
        hint: `jitctl exec ${options.role === undefined ? '' : `${shellWord(options.role)} `}-- ${words}`,
      },
    );
  }
  const [command, ...args] = options.command;
  if (command === undefined) {
    throw new UsageError('no command to run', {
      hint: `put the command after --: ${EXEC_USAGE}`,
    });
  }
  checkUseOptions(ctx, options);
  keepIgnored(ctx.env);
  // Before any credential is read or requested, with jitctl's PATH (a role's env may change it:
  // the command's own is checked again when it starts).
  resolveCommand(command, ctx.env.PATH);
  const { record, server, store } = await credentialToUse(ctx, options, 'exec');
  return runWithCredential(ctx, {
    record,
    server,
    store,
    kind: 'exec',
    command,
    args,
    // --kill-at-expiry, or the role's `kill_at_expiry: true` (docs/policy.md)
    atExpiry: options.killAtExpiry === true || useOf(record).kill_at_expiry ? 'end' : 'nothing',
  });
}

/** A word as it would be typed to a shell: quoted only when it has to be. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : shellQuote(safe(word));
}

/**
 * The credential exec and shell run with: the active one for the role; with `--request`, when
 * there is none (or it expired), a new request filed and waited for through the request flow of
 * `jitctl request` (src/cli/request-flow.ts), then kept in the store, or only in this process's
 * memory with `--no-store`. Ctrl-C while waiting leaves the request filed (exit 130, with the
 * `jitctl wait` that resumes); a denial or lapse is exit 3; the command never starts then.
 */
export async function credentialToUse(
  ctx: Context,
  options: UseOptions,
  verb: 'exec' | 'shell',
): Promise<{ record: CredentialRecord; server: string; store: CredentialStore }> {
  const usage = (r: string) => `jitctl ${verb} ${r}${verb === 'exec' ? ' -- …' : ''}`;
  const storeFlag = typeof options.store === 'string' ? options.store : undefined;
  if (!options.request) {
    const source = await openCredentialSource(ctx, { server: options.server, store: storeFlag });
    const stored = await activeCredential(ctx, source, options.role, usage);
    return {
      // Confirmed with the broker (a revoked grant is refused here), fresh enough for a command.
      record: await handOver(ctx, source, stored, { purpose: 'command' }),
      server: source.server,
      store: source.store,
    };
  }
  const role = options.role;
  if (role === undefined) {
    throw new UsageError('--request needs the role to ask for', {
      hint: `name it: jitctl ${verb} prod-deploy --request --for 15m --reason "…"${verb === 'exec' ? ' -- <command>' : ''}`,
    });
  }
  const [{ withConnection }, flow] = await Promise.all([
    import('../cli/connect.js'),
    import('../cli/request-flow.js'),
  ]);
  const input = { role, duration: options.for, reason: options.reason, ticket: options.ticket };
  flow.checkRequestInput(input);
  // --no-store with a pipeline's token in the environment needs no store at all: the session
  // comes from the token, the credential stays in memory, so nothing is opened or written.
  const ambient = ctx.env.JITCTL_FEDERATED_TOKEN;
  const memoryOnly =
    options.store === false && storeFlag === undefined && ambient !== undefined && ambient !== '';
  const connectOptions = { server: options.server, store: memoryOnly ? 'memory' : storeFlag };
  return withConnection(ctx, connectOptions, async (conn) => {
    try {
      const stored = await activeCredential(ctx, conn, role, usage);
      return {
        record: await handOver(ctx, conn, stored, { purpose: 'command' }),
        server: conn.server,
        store: conn.store,
      };
    } catch (err) {
      if (!(err instanceof NoCredentialError)) throw err;
      ctx.io.err(
        `${err.expired ? `the credential for ${safe(role)} has expired` : `no active credential for ${safe(role)}`}; requesting one\n`,
      );
    }
    const record = await flow.requestAccess(ctx, conn, input, {
      keep: options.store === false ? 'memory' : 'store',
    });
    return { record, server: conn.server, store: conn.store };
  });
}

/**
 * Checks shared by exec and shell before any credential is read: nesting, and the request flags,
 * which only mean something with `--request`.
 */
export function checkUseOptions(ctx: Context, options: UseOptions): void {
  const session = ctx.env.JITCTL_SESSION;
  if (session !== undefined && session !== '' && !options.allowNested) {
    throw new JitError(
      `already inside a jitctl session (${safe(ctx.env.JITCTL_ROLE ?? session)}); refusing to nest`,
      ExitCode.Error,
      { hint: 'exit that shell or command first, or pass --allow-nested' },
    );
  }
  if (options.request) return;
  for (const flag of ['for', 'reason', 'ticket'] as const) {
    if (options[flag] !== undefined) {
      throw new UsageError(`--${flag} goes with --request`, {
        hint: 'to ask for access first: jitctl request <role> --for 15m --reason "…"',
      });
    }
  }
  if (options.store === false) {
    throw new UsageError('--no-store goes with --request', {
      hint: 'it keeps a newly requested credential in memory only: jitctl exec <role> --request --no-store -- …',
    });
  }
}

export interface RunSpec {
  record: CredentialRecord;
  server: string;
  /** Where the credential came from (the session for reporting the command; grant-session.ts). */
  store?: CredentialStore | undefined;
  /** What runs: a command (exec) or a shell; reported as such. */
  kind?: 'exec' | 'shell' | undefined;
  /** Told when the grant's end moves (an extension): the shell's prompt. */
  onNewEnd?: ((endMs: number) => void) | undefined;
  command: string;
  args: string[];
  /** See {@link CommandSpec.atExpiry}. */
  atExpiry: CommandSpec['atExpiry'];
  /** Overrides for the command's environment on top of the credential's (shell: ZDOTDIR). */
  extraEnv?: Record<string, string>;
  /** Something that may end the session early (a revocation): see {@link CommandSpec.watch}. */
  watch?: CommandSpec['watch'];
}

/** Runs the command of `spec` with the credential's environment; resolves to jitctl's exit code. */
export async function runWithCredential(ctx: Context, spec: RunSpec): Promise<number> {
  const { vars, skipped } = commandEnvironment(ctx.env, spec.record, spec.server);
  if (skipped.length > 0) {
    ctx.io.err(
      `warning: ignored variables from the role's env: ${skipped.map((s) => safe(s)).join(', ')} ` +
        '(not valid names, or reserved: JITCTL_*, LD_*, DYLD_*)\n',
    );
  }
  // Follows the grant (a revocation ends the command) and reports the command to the broker.
  const session = startGrantSession(ctx, {
    record: spec.record,
    server: spec.server,
    store: spec.store,
    kind: spec.kind ?? 'exec',
    argv: [spec.command, ...spec.args],
    onNewEnd: spec.onNewEnd,
  });
  await session.beforeStart();
  try {
    return await runCommand(ctx, {
      command: spec.command,
      args: spec.args,
      env: { ...vars, ...spec.extraEnv },
      // The grant's end: the token in the environment may expire sooner (credential.ttl).
      expiresAt: grantEndOf(spec.record),
      role: spec.record.role,
      atExpiry: spec.atExpiry,
      watch: (running) => {
        const stopFollowing = session.watch(running);
        const other = spec.watch?.(running);
        return () => {
          stopFollowing();
          other?.();
        };
      },
      onExit: (code, signal) => session.onExit(code, signal),
    });
  } finally {
    await session.finish();
  }
}
