import { constants } from 'node:os';

/**
 * Signals that were ignored when jitctl started (nohup's SIGHUP, `trap '' INT` in a calling
 * script, SIGINT and SIGQUIT for `cmd &` in a script) stay ignored, in jitctl and in the command,
 * and are never passed on: what sudo does (src/signal.c saves the dispositions it started with).
 *
 * Node makes this hard twice over. At start-up it resets every inherited SIG_IGN to the default
 * before any JavaScript runs (src/node.cc, ResetSignalHandlers; there is no flag), so jitctl's own
 * /proc/self/status no longer shows them; and libuv resets every disposition in a spawned child.
 * So bin/jitctl.js starts as /bin/sh, which reads the ignored set before Node replaces it and
 * passes it on in {@link SIGIGN_ENV}; jitctl keeps those signals ignored in itself with a no-op
 * listener (Node has no SIG_IGN), and starts the command through {@link ignoringTrampoline}.
 * Where the set is unknown (macOS and other systems without /proc, Windows, `node bin/jitctl.js`
 * run directly), nothing counts as ignored: jitctl behaves as before.
 */

/** The SigIgn mask of /proc/<pid>/status (hex, bit n-1 for signal n), set by bin/jitctl.js. */
export const SIGIGN_ENV = 'JITCTL_SIGIGN';

type Env = Readonly<Record<string, string | undefined>>;

const BY_NAME = constants.signals as Readonly<Record<string, number>>;
const BY_NUMBER = new Map<number, NodeJS.Signals>();
for (const [name, n] of Object.entries(BY_NAME)) {
  // The first name wins: SIGABRT before its alias SIGIOT, SIGIO before SIGPOLL.
  if (!BY_NUMBER.has(n)) BY_NUMBER.set(n, name as NodeJS.Signals);
}

export function signalNumber(sig: NodeJS.Signals): number {
  return BY_NAME[sig] ?? 0;
}

/** The name of signal `n` on this platform; undefined for ones Node has no name for (realtime). */
export function signalName(n: number): NodeJS.Signals | undefined {
  return BY_NUMBER.get(n);
}

/** Numbers of the signals ignored when jitctl started; empty when the launcher could not tell. */
export function inheritedIgnored(env: Env): readonly number[] {
  const mask = env[SIGIGN_ENV];
  if (mask === undefined || !/^[0-9a-fA-F]{1,16}$/.test(mask)) return [];
  const bits = BigInt(`0x${mask}`);
  const out: number[] = [];
  for (let n = 1; n <= 64; n++) if ((bits >> BigInt(n - 1)) & 1n) out.push(n);
  return out;
}

export function isInheritedIgnored(env: Env, sig: NodeJS.Signals): boolean {
  return inheritedIgnored(env).includes(signalNumber(sig));
}

/**
 * Not kept ignored in jitctl itself: ones Node already ignores (SIGPIPE, SIGXFSZ) or needs
 * (SIGCHLD: libuv learns of the command's exit through it), ones no process can ignore, and the
 * hardware faults, which Node must not survive. The command still gets all of them ignored.
 */
const NOT_IN_JITCTL = new Set<string>([
  'SIGPIPE',
  'SIGXFSZ',
  'SIGCHLD',
  'SIGKILL',
  'SIGSTOP',
  'SIGBUS',
  'SIGFPE',
  'SIGSEGV',
  'SIGILL',
]);
const noop = () => {};
let kept = false;

/**
 * Ignores in jitctl what was ignored when it started: a listener that does nothing, the closest
 * Node has to SIG_IGN (jitctl survives, nothing is passed on). Once per process.
 */
export function keepIgnored(env: Env): void {
  if (kept) return;
  kept = true;
  for (const n of inheritedIgnored(env)) {
    const name = signalName(n);
    if (name === undefined || NOT_IN_JITCTL.has(name)) continue;
    try {
      process.on(name, noop);
    } catch {
      // A signal this platform cannot listen for: nothing to keep.
    }
  }
}

/**
 * How to start `command args…` with `ignored` signals ignored, since libuv resets them all in the
 * child: /bin/sh sets them to SIG_IGN and then execs the command, which inherits them (exec keeps
 * SIG_IGN). argv goes through "$@" verbatim; only a command whose name starts with `-` is given
 * by its `path`, so that `exec` cannot take it for an option. The environment (the credential)
 * is the child's, never argv. Undefined when nothing is ignored: the common path costs nothing.
 */
export function ignoringTrampoline(
  ignored: readonly number[],
  command: string,
  path: string,
  args: readonly string[],
): { file: string; args: string[] } | undefined {
  if (ignored.length === 0 || process.platform === 'win32') return undefined;
  return {
    file: '/bin/sh',
    args: [
      '-c',
      `trap '' ${ignored.join(' ')}; exec "$@"`,
      'jitctl',
      command.startsWith('-') ? path : command,
      ...args,
    ],
  };
}
