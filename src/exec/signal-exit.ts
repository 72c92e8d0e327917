/**
 * A command that died of a signal makes jitctl die of the same signal, as sudo does (src/exec.c):
 * the caller then sees what it would have seen without jitctl. bash stops a loop whose command
 * died of SIGINT (it takes an exit code of 130 for "the command handled Ctrl-C and carried on"),
 * and Python's subprocess reports -2, not 130.
 *
 * The command module only records the signal ({@link exitBySignalLater}); the entry re-raises it
 * after everything else has finished, so tests that call a command's `run` are not killed.
 */

/**
 * Signals whose default action ends a process without a core dump. The ones that dump core
 * (SIGQUIT, SIGABRT, SIGSEGV, SIGILL, SIGBUS, SIGFPE, SIGSYS, SIGTRAP, SIGXCPU, SIGXFSZ) are not
 * re-raised: sudo first sets RLIMIT_CORE to 0, which Node cannot do, and a core of jitctl would
 * hold the credential. For those, and realtime signals, jitctl exits 128+n.
 */
const RERAISABLE = new Set<string>([
  'SIGHUP',
  'SIGINT',
  'SIGKILL',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGUSR1',
  'SIGUSR2',
  'SIGSTKFLT',
  'SIGIO',
  'SIGPOLL',
  'SIGPWR',
  'SIGPROF',
  'SIGVTALRM',
  'SIGLOST',
]);

export function reraisable(sig: NodeJS.Signals): boolean {
  return RERAISABLE.has(sig) && process.platform !== 'win32';
}

let pending: NodeJS.Signals | undefined;

/** Asks the entry to end jitctl by `sig` once the command has returned its exit code. */
export function exitBySignalLater(sig: NodeJS.Signals): void {
  pending = sig;
}

/** The signal recorded by {@link exitBySignalLater}, once. */
export function takeExitSignal(): NodeJS.Signals | undefined {
  const sig = pending;
  pending = undefined;
  return sig;
}

/**
 * Ends this process by `sig` with the default action, after stdout and stderr have drained.
 * Returns only if the process is still alive (the signal blocked, as Node does with SIGUSR1 while
 * its inspector thread runs): the caller then exits with 128+n.
 */
export async function dieBySignal(sig: NodeJS.Signals): Promise<void> {
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  if (sig !== 'SIGKILL') {
    process.removeAllListeners(sig);
    // libuv puts back SIG_DFL when the last listener of a signal goes; for SIGPIPE, which Node
    // itself ignores from the start, this is also the only way back to the default.
    const once = () => {};
    process.on(sig, once);
    process.off(sig, once);
  }
  process.kill(process.pid, sig);
  // An unblocked signal sent to oneself is delivered before kill(2) returns; give a blocked one
  // a moment before giving up.
  await new Promise((resolve) => setTimeout(resolve, 50));
}

function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, 2_000);
    stream.write('', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
