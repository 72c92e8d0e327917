import type { IO } from './io.js';
import { safe, style } from './output.js';

/**
 * Progress on stderr: an ora spinner on an interactive terminal, otherwise one plain line per
 * change (CI logs and pipes stay readable and never see spinner frames).
 */
export interface Progress {
  update(text: string): void;
  succeed(text: string): void;
  fail(text: string): void;
  /** Removes the spinner without a final line. */
  stop(): void;
}

export async function startProgress(io: IO, text: string): Promise<Progress> {
  if (!io.color) return plainProgress(io, text);
  const { default: ora } = await import('ora');
  // hideCursor: false keeps ora from registering signal-exit (through restore-cursor), whose SIGINT
  // handler re-raises the signal when it thinks it is the last listener: Ctrl-C would then kill
  // jitctl before the command could say what it left behind (e.g. `jitctl wait <id>`).
  const spinner = ora({ text, stream: io.stderr, discardStdin: false, hideCursor: false }).start();
  return {
    update: (t) => {
      spinner.text = t;
    },
    succeed: (t) => void spinner.succeed(t),
    fail: (t) => void spinner.fail(t),
    stop: () => void spinner.stop(),
  };
}

function plainProgress(io: IO, first: string): Progress {
  let last = '';
  const line = (t: string) => {
    if (t !== last) io.err(`${t}\n`);
    last = t;
  };
  line(first);
  return {
    update: line,
    succeed: (t) => io.err(`${style(io, 'green', '✔')} ${t}\n`),
    fail: (t) => io.err(`${style(io, 'red', '✖')} ${t}\n`),
    stop: () => {},
  };
}

export { safe };
