import { type ChildProcess, spawn } from 'node:child_process';
import { signalNumber } from './inherited-signals.js';

/**
 * Was a signal sent to jitctl alone, or to its whole process group?
 *
 * The command runs in jitctl's process group, so that a terminal's job control keeps working
 * (Ctrl-Z stops both, `fg` continues both, the command reads the terminal). A signal sent to the
 * group (Ctrl-C, Ctrl-\, a resize, a hangup, `kill -- -PGID`, a CI runner ending the job) reaches
 * the command by itself and must not be passed on a second time; one sent to jitctl alone
 * (`kill <pid>`) must be. sudo tells them apart with siginfo (si_code, si_pid), which Node does
 * not expose.
 *
 * The witness tells instead: a tiny /bin/sh in the same group that traps the same signals and
 * writes each one it gets to a pipe. When jitctl gets signal X it sends the witness SIGURG (which
 * nobody else sends it) and reads until the witness reports URG. A signal sent to a group is
 * queued to every member before any of them can run its handler, so if X went to the group it was
 * pending at the witness before the SIGURG was, and the witness reports it before or with URG (sh
 * runs the traps of all pending signals before it writes). Deterministic, no timing guess; one
 * process per exec session, a pipe round trip per signal received.
 *
 * Where /bin/sh is missing (Windows) or the witness stops answering, {@link GroupWitness.sawToo}
 * returns undefined and the caller falls back on a guess.
 */
export interface GroupWitness {
  readonly pid: number | undefined;
  /** true: the witness got `sig` too; false: jitctl alone did; undefined: cannot tell. */
  sawToo(sig: NodeJS.Signals): Promise<boolean | undefined>;
  close(): void;
}

/** Past this, a witness that has not answered is given up (a stopped or killed witness). */
const ANSWER_MS = 3_000;

const short = (sig: NodeJS.Signals) => sig.replace(/^SIG/, '');

/**
 * Starts a witness for `signals`, in jitctl's process group, with `ignored` (signal numbers)
 * ignored as jitctl ignores them. It exits when jitctl goes (its stdin closes).
 */
export function startWitness(
  signals: readonly NodeJS.Signals[],
  ignored: readonly number[],
): GroupWitness {
  if (process.platform === 'win32') return unavailable;
  const reported = signals.filter((s) => !ignored.includes(signalNumber(s)));
  const script = [
    // Not reported, and must not end the witness: what jitctl ignores, and signals nobody
    // forwards but that a group may get.
    `trap '' ${[...ignored, 'ALRM', 'VTALRM', 'PROF'].join(' ')}`,
    ...reported.map((s) => `trap 'r="$r ${short(s)}"' ${short(s)}`),
    `trap 'r="$r URG"' URG`,
    'echo ready',
    // read returns early when a trapped signal arrives; at end of file (jitctl gone) it exits.
    'while :; do r=; read -r _ || [ -n "$r" ] || exit 0; [ -z "$r" ] || echo "$r"; done',
  ].join('\n');
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', script, 'jitctl-witness'], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: {},
    });
  } catch {
    return unavailable;
  }
  let usable = true;
  let ready = false;
  let buffer = '';
  let seen = new Set<string>();
  let waiter: ((seen: Set<string>) => void) | undefined;
  const stop = () => {
    usable = false;
    waiter?.(new Set());
  };
  child.on('error', stop);
  child.on('exit', stop);
  child.stdin!.on('error', () => {});
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffer += chunk;
    let nl = buffer.indexOf('\n');
    while (nl !== -1) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
      if (line === 'ready') {
        ready = true;
        continue;
      }
      for (const word of line.split(/\s+/)) if (word) seen.add(word);
      if (seen.has('URG') && waiter) {
        const answered = seen;
        seen = new Set();
        waiter(answered);
      }
    }
  });
  // Neither the witness nor its pipes keep jitctl running.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stdin as unknown as { unref?: () => void }).unref?.();

  let queue: Promise<unknown> = Promise.resolve();
  const ask = (sig: NodeJS.Signals) =>
    new Promise<boolean | undefined>((resolve) => {
      if (!usable || !ready || child.pid === undefined) {
        resolve(undefined);
        return;
      }
      const timer = setTimeout(() => {
        // An answer that comes later would be taken for the next question's: stop asking.
        usable = false;
        waiter = undefined;
        resolve(undefined);
      }, ANSWER_MS);
      waiter = (answered) => {
        clearTimeout(timer);
        waiter = undefined;
        resolve(usable ? answered.has(short(sig)) : undefined);
      };
      try {
        process.kill(child.pid, 'SIGURG');
      } catch {
        stop();
      }
    });
  return {
    pid: child.pid,
    sawToo(sig) {
      const answer = queue.then(() => ask(sig));
      queue = answer;
      return answer;
    },
    close() {
      usable = false;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      child.stdin!.destroy();
      child.stdout!.destroy();
    },
  };
}

const unavailable: GroupWitness = {
  pid: undefined,
  sawToo: async () => undefined,
  close: () => {},
};
