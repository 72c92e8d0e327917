import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { Context } from '../cli/context.js';
import { ExitCode, JitError, UsageError } from '../cli/errors.js';
import { clockTime, relative, safe } from '../cli/output.js';
import {
  activeCredential,
  commandEnvironment,
  NoCredentialError,
  openCredentialSource,
} from '../credentials/active.js';
import type { CredentialRecord } from '../credentials/records.js';

/**
 * `jitctl exec [role] -- command [args…]`: run a command with the credential in its environment
 * and nowhere else (aws-vault's exec). The credential never goes on a command line; jitctl waits,
 * forwards signals, and exits with the command's code (128+n when a signal killed it).
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
  killAtExpiry?: boolean | undefined;
}

export const EXEC_USAGE = 'jitctl exec [role] -- command [args…]';

export async function run(options: Options, ctx: Context): Promise<number> {
  const [command, ...args] = options.command;
  if (command === undefined) {
    throw new UsageError('no command to run', {
      hint: `put the command after --: ${EXEC_USAGE}`,
    });
  }
  checkUseOptions(ctx, options);
  const { record, server } = await credentialToUse(ctx, options, 'exec');
  return runWithCredential(ctx, {
    record,
    server,
    command,
    args,
    killAtExpiry: options.killAtExpiry === true,
  });
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
): Promise<{ record: CredentialRecord; server: string }> {
  const usage = (r: string) => `jitctl ${verb} ${r}${verb === 'exec' ? ' -- …' : ''}`;
  const storeFlag = typeof options.store === 'string' ? options.store : undefined;
  if (!options.request) {
    const source = await openCredentialSource(ctx, { server: options.server, store: storeFlag });
    return {
      record: await activeCredential(ctx, source, options.role, usage),
      server: source.server,
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
      return { record: await activeCredential(ctx, conn, role, usage), server: conn.server };
    } catch (err) {
      if (!(err instanceof NoCredentialError)) throw err;
      ctx.io.err(
        `${err.expired ? `the credential for ${safe(role)} has expired` : `no active credential for ${safe(role)}`}; requesting one\n`,
      );
    }
    const record = await flow.requestAccess(ctx, conn, input, {
      keep: options.store === false ? 'memory' : 'store',
    });
    return { record, server: conn.server };
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
  command: string;
  args: string[];
  killAtExpiry?: boolean;
  /** Overrides for the command's environment on top of the credential's (shell: ZDOTDIR). */
  extraEnv?: Record<string, string>;
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
  return runChild(ctx, {
    command: spec.command,
    args: spec.args,
    env: { ...vars, ...spec.extraEnv },
    expiresAt: Date.parse(spec.record.expiresAt),
    role: spec.record.role,
    killAtExpiry: spec.killAtExpiry === true,
  });
}

/**
 * Signals passed on to the command. SIGINT, SIGQUIT and SIGWINCH come from the terminal, which
 * sends them to its whole foreground process group: the command (in jitctl's group) already got
 * its own copy, so jitctl passes those on only when it is not in the terminal's foreground group
 * (no terminal, or a background job), where they must have been sent to jitctl alone. Node cannot
 * see who sent a signal (no siginfo), so this is the closest test of "the terminal sent it".
 * The others are sent to a process, never by the terminal, and always passed on. SIGHUP is
 * passed on too: a hangup reaches the group as well, and a duplicate hangup to an exiting
 * command is harmless where a lost one is not.
 */
export const FORWARDED_SIGNALS = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
] as const;
const FROM_TERMINAL = new Set<NodeJS.Signals>(['SIGINT', 'SIGQUIT', 'SIGWINCH']);
/** After SIGTERM at expiry, a command that ignores it gets SIGKILL this much later. */
export const EXPIRY_GRACE_MS = 10_000;
const WARN_BEFORE_MS = 60_000;

interface ChildSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  expiresAt: number;
  role: string;
  killAtExpiry: boolean;
}

export function runChild(ctx: Context, spec: ChildSpec): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    const handlers = new Map<NodeJS.Signals, () => void>();
    const cleanup = () => {
      for (const t of timers) clearTimeout(t);
      for (const [sig, h] of handlers) process.removeListener(sig, h);
    };

    // Handlers first: a signal that arrives while the command starts must not kill jitctl
    // and leave the command running on its own.
    let child: ReturnType<typeof spawn> | undefined;
    for (const sig of FORWARDED_SIGNALS) {
      const handler = () => {
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        if (FROM_TERMINAL.has(sig) && inForegroundOfTerminal(ctx)) return;
        child.kill(sig);
      };
      try {
        process.on(sig, handler);
        handlers.set(sig, handler);
      } catch {
        // Windows cannot listen for some of these (SIGUSR1/2, SIGQUIT); nothing to pass on there.
      }
    }

    try {
      child = spawn(spec.command, spec.args, { stdio: 'inherit', env: spec.env });
    } catch (err) {
      cleanup();
      reject(spawnError(spec.command, err));
      return;
    }
    const started = child;

    let settled = false;
    started.once('error', (err) => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(spawnError(spec.command, err));
    });
    started.once('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (code !== null) resolve(code);
      else resolve(128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });

    if (spec.killAtExpiry) {
      const role = safe(spec.role);
      // Node fires at once for delays over 2^31-1 ms (about 24.8 days): re-arm in steps.
      const at = (ms: number, fn: () => void) => {
        const MAX = 2 ** 31 - 1;
        const rest = Math.max(0, ms);
        timers.push(
          setTimeout(() => (rest > MAX ? at(rest - MAX, fn) : fn()), Math.min(rest, MAX)),
        );
      };
      const left = spec.expiresAt - ctx.clock.now();
      at(Math.max(0, left - WARN_BEFORE_MS), () =>
        ctx.io.err(
          `warning: the credential for ${role} expires ${relative(spec.expiresAt, ctx.clock.now())} ` +
            `(${clockTime(spec.expiresAt)}); the command will get SIGTERM then\n`,
        ),
      );
      at(left, () => {
        ctx.io.err(`jitctl: the credential for ${role} expired; sending SIGTERM to the command\n`);
        started.kill('SIGTERM');
        at(EXPIRY_GRACE_MS, () => {
          ctx.io.err(
            `jitctl: the command is still running ${EXPIRY_GRACE_MS / 1000} s after SIGTERM; sending SIGKILL\n`,
          );
          started.kill('SIGKILL');
        });
      });
    }
  });
}

/**
 * Whether jitctl is in the foreground process group of its controlling terminal, so that the
 * terminal's own signals reached the command too. Linux: /proc/self/stat (tty_nr, tpgid);
 * elsewhere, a terminal on stdin is the best guess.
 */
function inForegroundOfTerminal(ctx: Context): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // pid (comm) state ppid pgrp session tty_nr tpgid …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const ttyNr = Number(fields[4]);
    const tpgid = Number(fields[5]);
    return ttyNr !== 0 && tpgid === pgrp;
  } catch {
    return ctx.io.stdinIsTTY;
  }
}

/** The shell's conventions: 127 command not found, 126 found but not executable. */
function spawnError(command: string, err: unknown): JitError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') {
    return new JitError(`${safe(command)}: command not found`, 127, {
      hint: 'check the name, or give its path',
    });
  }
  if (code === 'EACCES' || code === 'EISDIR' || code === 'ENOEXEC' || code === 'EPERM') {
    return new JitError(`${safe(command)}: not executable (${code})`, 126, {
      hint: `check that it is a program and has execute permission (chmod +x ${safe(command)})`,
    });
  }
  return new JitError(`cannot run ${safe(command)}: ${(err as Error).message}`, 126, {
    cause: err,
  });
}
