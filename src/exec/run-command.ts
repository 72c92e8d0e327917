import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Context } from '../cli/context.js';
import { DeniedError, JitError } from '../cli/errors.js';
import { clockTime, relative, safe } from '../cli/output.js';
import {
  type CommandTree,
  endCommandTree,
  findTree,
  SESSION_ID_ENV,
  sessionMarker,
  startTime,
} from './command-tree.js';
import { type GroupWitness, startWitness } from './group-witness.js';
import {
  ignoringTrampoline,
  inheritedIgnored,
  keepIgnored,
  signalNumber,
} from './inherited-signals.js';
import { resolveCommand } from './resolve-command.js';
import { exitBySignalLater, reraisable } from './signal-exit.js';

/**
 * Runs the command of an exec or shell session and resolves to jitctl's exit code, as sudo runs
 * its command: signals ignored at start stay ignored ({@link inheritedIgnored}), every other
 * signal reaches the command exactly once ({@link startWitness}), a signal death is passed on
 * ({@link exitBySignalLater}), and ending the session ends everything the command started
 * ({@link endCommandTree}).
 */

/** Passed on to the command when they were sent to jitctl alone (see group-witness.ts). */
export const FORWARDED_SIGNALS = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
] as const satisfies readonly NodeJS.Signals[];
/** Without a witness, these are guessed to come from the terminal when jitctl is in its foreground. */
const FROM_TERMINAL = new Set<NodeJS.Signals>(['SIGINT', 'SIGQUIT', 'SIGWINCH']);
/** After SIGTERM, what is still running this much later gets SIGKILL. */
export const GRACE_MS = 10_000;
/** The notice before expiry comes this long before it. */
export const WARN_BEFORE_MS = 60_000;

export interface CommandSpec {
  command: string;
  args: string[];
  /** The command's environment (the credential's); the session marker is added here. */
  env: Record<string, string>;
  role: string;
  expiresAt: number;
  /**
   * At expiry: `end` the command and everything it started (--kill-at-expiry), `notify` with a
   * line on stderr shortly before and at expiry (shell), or `nothing`.
   */
  atExpiry: 'end' | 'notify' | 'nothing';
  /** SIGTERM → SIGKILL grace; {@link GRACE_MS} by default. */
  graceMs?: number;
  /**
   * Called once the command runs, with the handle that can end it (a revocation watcher); the
   * function it returns, if any, is called when the command is over.
   */
  watch?: (command: RunningCommand) => (() => void) | undefined;
  /** Told how the command's first process ended (before what it left behind is cleared up). */
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/** A running exec session, for whatever must end it early. */
export interface RunningCommand {
  readonly pid: number;
  readonly tree: CommandTree;
  /**
   * Ends the command and everything it started: a line on stderr with `reason`, SIGTERM to every
   * process, SIGKILL to what is left after the grace. jitctl then exits 3 with `reason`. Resolves
   * when they are gone; calling it again joins the first call.
   */
  end(reason: string): Promise<void>;
  /**
   * The grant now ends at `expiresAt` (an extension): the notices and, with `atExpiry: 'end'`,
   * the end of the command move with it.
   */
  moveExpiry(expiresAt: number): void;
}

export function runCommand(ctx: Context, spec: CommandSpec): Promise<number> {
  const path = resolveCommand(spec.command, spec.env.PATH);
  const ignored = inheritedIgnored(ctx.env);
  keepIgnored(ctx.env);
  const marker = sessionMarker(ctx.env[SESSION_ID_ENV]);
  const env = { ...spec.env, [SESSION_ID_ENV]: marker.value };
  const forwarded = FORWARDED_SIGNALS.filter((s) => !ignored.includes(signalNumber(s)));
  const graceMs = spec.graceMs ?? GRACE_MS;

  return new Promise<number>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    const handlers = new Map<NodeJS.Signals, () => void>();
    let witness: GroupWitness | undefined;
    let unwatch: (() => void) | undefined;
    /** The command's first process is gone: no more expiry, nobody to ask. */
    const stopWatching = () => {
      for (const t of timers) clearTimeout(t);
      witness?.close();
    };
    /**
     * Everything is over. The handlers stay until then, so that a signal that comes while
     * jitctl ends what the command left does not kill jitctl halfway (it is not passed on:
     * there is no command to pass it to).
     */
    const cleanup = () => {
      stopWatching();
      for (const [sig, h] of handlers) process.removeListener(sig, h);
      unwatch?.();
    };

    // Handlers first: a signal that arrives while the command starts must not kill jitctl
    // and leave the command running on its own.
    let child: ChildProcess | undefined;
    const running = () =>
      child !== undefined && child.exitCode === null && child.signalCode === null;
    for (const sig of forwarded) {
      const handler = () => void passOn(sig);
      try {
        process.on(sig, handler);
        handlers.set(sig, handler);
      } catch {
        // Windows cannot listen for some of these (SIGUSR1/2, SIGQUIT); nothing to pass on there.
      }
    }
    const passOn = async (sig: NodeJS.Signals) => {
      if (!running()) return;
      const saw = await witness!.sawToo(sig);
      const reachedCommand =
        saw === undefined
          ? FROM_TERMINAL.has(sig) && inForegroundOfTerminal(ctx)
          : saw && inOurProcessGroup(child!.pid);
      if (!reachedCommand && running()) child!.kill(sig);
    };

    witness = startWitness(forwarded, ignored);
    const trampoline = ignoringTrampoline(ignored, spec.command, path, spec.args);
    try {
      child = trampoline
        ? spawn(trampoline.file, trampoline.args, { stdio: 'inherit', env })
        : spawn(spec.command, spec.args, { stdio: 'inherit', env });
    } catch (err) {
      cleanup();
      reject(spawnError(spec.command, err));
      return;
    }
    const started = child;

    let ending: { reason: string; final: boolean; done: Promise<void> } | undefined;
    const tree: CommandTree = {
      rootPid: started.pid ?? -1,
      marker: marker.id,
      exclude: witness.pid === undefined ? [] : [witness.pid],
      since: started.pid === undefined ? undefined : startTime(started.pid),
    };
    /** `final`: jitctl ended the session (exit 3); otherwise it only clears up after the command. */
    const endTree = (reason: string, final: boolean): Promise<void> => {
      if (ending) return ending.done;
      ctx.io.err(
        `jitctl: ${reason}; sending SIGTERM to ${final ? 'the command and ' : ''}everything it started\n`,
      );
      const done = endCommandTree(tree, {
        graceMs,
        onKill: (pids) =>
          ctx.io.err(
            `jitctl: ${pids.length === 1 ? '1 process is' : `${pids.length} processes are`} still ` +
              `running ${graceMs / 1000} s after SIGTERM; sending SIGKILL\n`,
          ),
      }).then(() => {});
      ending = { reason, final, done };
      return done;
    };
    const end = (reason: string) => endTree(reason, true);

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
      stopWatching();
      spec.onExit?.(code, signal);
      void finish(code, signal).finally(cleanup).then(resolve, reject);
    });
    const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
      if (!ending && spec.atExpiry === 'end') {
        // jitctl cannot keep the expiry's promise once it has exited: what the command left
        // running ends with it.
        const left = findTree(tree).size;
        if (left > 0) {
          void endTree(
            `the command exited and left ${left === 1 ? '1 process' : `${left} processes`} running (--kill-at-expiry)`,
            false,
          );
        }
      }
      if (ending) {
        await ending.done;
        if (ending.final) throw new DeniedError(`the command was ended: ${ending.reason}`);
      }
      return exitCode(code, signal);
    };

    if (started.pid !== undefined) {
      let expiresAt = spec.expiresAt;
      const moveExpiry = (at: number) => {
        if (at === expiresAt || settled) return;
        expiresAt = at;
        for (const t of timers.splice(0)) clearTimeout(t);
        expiryTimers(ctx, { ...spec, expiresAt }, timers, end);
      };
      expiryTimers(ctx, spec, timers, end);
      unwatch = spec.watch?.({ pid: started.pid, tree, end, moveExpiry }) ?? undefined;
    }
  });
}

/** The command's exit code, or 128+n for a signal death, which the entry re-raises where it can. */
function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  if (signal === null) return 1;
  if (reraisable(signal)) exitBySignalLater(signal);
  return 128 + signalNumber(signal);
}

function expiryTimers(
  ctx: Context,
  spec: CommandSpec,
  timers: NodeJS.Timeout[],
  end: (reason: string) => Promise<void>,
): void {
  if (spec.atExpiry === 'nothing') return;
  const role = safe(spec.role);
  // Node fires at once for delays over 2^31-1 ms (about 24.8 days): re-arm in steps.
  const at = (ms: number, fn: () => void) => {
    const MAX = 2 ** 31 - 1;
    const rest = Math.max(0, ms);
    timers.push(setTimeout(() => (rest > MAX ? at(rest - MAX, fn) : fn()), Math.min(rest, MAX)));
  };
  const left = spec.expiresAt - ctx.clock.now();
  const when = () => `${relative(spec.expiresAt, ctx.clock.now())} (${clockTime(spec.expiresAt)})`;
  if (spec.atExpiry === 'end') {
    if (left > WARN_BEFORE_MS) {
      at(left - WARN_BEFORE_MS, () =>
        ctx.io.err(
          `warning: the credential for ${role} expires ${when()}; the command and everything ` +
            'it started will get SIGTERM then\n',
        ),
      );
    }
    at(left, () => void end(`the credential for ${role} expired`));
    return;
  }
  // A shell: the lines come between prompts, so each starts on a line of its own.
  if (left > WARN_BEFORE_MS) {
    at(left - WARN_BEFORE_MS, () =>
      ctx.io.err(
        `\njitctl: the credential for ${role} expires ${when()}; ` +
          'finish up, or exit and request it again\n',
      ),
    );
  }
  at(left, () =>
    ctx.io.err(
      `\njitctl: the credential for ${role} has expired (${clockTime(spec.expiresAt)}); ` +
        'commands in this shell can no longer use it: exit the shell\n',
    ),
  );
}

/** Our process group, and whether `pid` is still in it (Linux; elsewhere assumed so). */
function inOurProcessGroup(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  const own = statFields('self');
  const theirs = statFields(String(pid));
  if (!own || !theirs) return true;
  return own[2] === theirs[2];
}

/** state ppid pgrp session tty_nr tpgid … of /proc/<pid>/stat; undefined where there is none. */
function statFields(pid: string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * Whether jitctl is in the foreground process group of its controlling terminal, so that the
 * terminal's own signals reached the command too: the guess when there is no witness. Linux:
 * /proc/self/stat (tty_nr, tpgid); elsewhere, a terminal on stdin.
 */
function inForegroundOfTerminal(ctx: Context): boolean {
  const f = statFields('self');
  if (!f) return ctx.io.stdinIsTTY;
  return Number(f[4]) !== 0 && f[5] === f[2];
}

/** What spawn itself reports, when the command vanished between the look and the start. */
function spawnError(command: string, err: unknown): JitError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new JitError(`${safe(command)}: command not found`, 127, {
      hint: 'check the name, or give its path',
    });
  }
  return new JitError(`cannot run ${safe(command)}: ${(err as Error).message}`, 126, {
    cause: err,
  });
}
