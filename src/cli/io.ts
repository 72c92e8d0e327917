import { PassThrough, type Readable, type Writable } from 'node:stream';
import { isatty } from 'node:tty';

/**
 * Where a command reads and writes, and what kind of terminal it has. Data goes to stdout;
 * progress, prompts and errors to stderr. Commands never touch process.stdout directly so that
 * tests can run them with {@link testIO}.
 */
export interface IO {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdin: Readable;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  readonly stdinIsTTY: boolean;
  /** Colour and spinners on stderr: a TTY, no NO_COLOR, not CI. */
  readonly color: boolean;
  /** Terminal width for tables (80 when unknown). */
  readonly columns: number;
  /** Whether questions can be asked: stdin and stderr are terminals and this is not CI. */
  canPrompt(): boolean;
  out(text: string): void;
  err(text: string): void;
}

type Env = Record<string, string | undefined>;

export function isCI(env: Env): boolean {
  const ci = env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

export function systemIO(env: Env = process.env): IO {
  const stdoutIsTTY = process.stdout.isTTY === true;
  const stderrIsTTY = process.stderr.isTTY === true;
  // Asked of the descriptor: process.stdin builds its stream (and loads Node's stream modules) on
  // first use, which most commands never need.
  const stdinIsTTY = isatty(0);
  const ci = isCI(env);
  const color = stderrIsTTY && !ci && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    get stdin() {
      return process.stdin;
    },
    stdoutIsTTY,
    stderrIsTTY,
    stdinIsTTY,
    color,
    columns: process.stdout.columns || process.stderr.columns || 80,
    canPrompt: () => stdinIsTTY && stderrIsTTY && !ci,
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  };
}

export interface TestIO extends IO {
  stdoutText(): string;
  stderrText(): string;
  /** Feeds text to stdin. */
  input(text: string): void;
}

/** An IO that records output, for tests (cli/cli's iostreams.Test()). */
export function testIO(
  opts: { tty?: boolean; canPrompt?: boolean; columns?: number } = {},
): TestIO {
  const tty = opts.tty ?? false;
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return {
    stdout,
    stderr,
    stdin,
    stdoutIsTTY: tty,
    stderrIsTTY: tty,
    stdinIsTTY: tty,
    color: false,
    columns: opts.columns ?? 100,
    canPrompt: () => opts.canPrompt ?? tty,
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    stdoutText: () => out,
    stderrText: () => err,
    input: (text) => void stdin.write(text),
  };
}
