import { dieBySignal, takeExitSignal } from '../exec/signal-exit.js';
import { formatError } from './errors.js';
import { main } from './main.js';

// The bundle's entry; bin/jitctl.js imports it. The exit code is set, never forced, so output drains.

// A reader that goes away (`jitctl list | head -1`) is not an error: stop quietly, like a Unix
// tool killed by SIGPIPE would, instead of crashing on EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
}

main(process.argv).then(
  async (code) => {
    process.exitCode = code;
    // exec and shell: the command died of a signal, so jitctl dies of it too (sudo's way).
    const signal = takeExitSignal();
    if (signal) await dieBySignal(signal);
    exitIfStuck();
  },
  (err: unknown) => {
    process.stderr.write(`${formatError(err, process.env.JITCTL_DEBUG === '1')}\n`);
    process.exitCode = 1;
  },
);

/**
 * The command has returned, so nothing of jitctl's own is left to run. A native call that
 * outlived its timeout (a keychain daemon that stopped answering D-Bus: the call cannot be
 * cancelled, see src/credentials/keychain-store.ts) would still hold the process open; end it
 * after a grace period, once stdout and stderr have drained. unref(): a process that is really
 * done exits at once and never sees this timer.
 */
function exitIfStuck(): void {
  const timer = setTimeout(() => {
    if (process.stdout.writableLength > 0 || process.stderr.writableLength > 0) timer.refresh();
    else process.exit();
  }, 2_000);
  timer.unref();
}
