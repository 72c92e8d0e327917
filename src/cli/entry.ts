import { formatError } from './errors.js';
import { main } from './main.js';

// bin/jitctl.js imports this bundle; the exit code is set, never forced, so output drains first.
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${formatError(err, process.env.JITCTL_DEBUG === '1')}\n`);
    process.exitCode = 1;
  },
);
