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
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${formatError(err, process.env.JITCTL_DEBUG === '1')}\n`);
    process.exitCode = 1;
  },
);
