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
 * The witness tells instead: a tiny /bin/sh in the same group that counts each of those signals
 * it gets. When jitctl gets signal X it writes a question on the witness's stdin and reads the
 * answer: the counts. A signal sent to a group is queued to every member before any of them can
 * run a handler, so if X went to the group it was pending at the witness before the question was
 * written, and sh runs the trap of a pending signal before it answers. Counts, not a list that
 * is cleared, so no signal is lost between two answers; a question is a line on a pipe, so no
 * wake-up is lost either. No timing guess; one process per exec session, one pipe round trip per
 * signal received.
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

/** Past this, a witness that has not answered is given up (stopped or killed by someone). */
const ANSWER_MS = 3_000;

const short = (sig: NodeJS.Signals) => sig.replace(/^SIG/, '');

/**
 * Starts a witness for `signals`, in jitctl's process group, with `ignored` (signal numbers)
 * ignored as jitctl ignores them. It exits when jitctl goes (end of file on its stdin).
 */
export function startWitness(
  signals: readonly NodeJS.Signals[],
  ignored: readonly number[],
): GroupWitness {
  if (process.platform === 'win32') return unavailable;
  const counted = signals.filter((s) => !ignored.includes(signalNumber(s))).map(short);
  const counts = counted.map((s) => `${s}=$c_${s}`).join(' ');
  const script = [
    // Not counted, and must not end the witness: what jitctl ignores, and signals nobody
    // passes on but that a group may get.
    `trap '' ${[...ignored, 'ALRM', 'VTALRM', 'PROF'].join(' ')}`,
    ...counted.map((s) => `c_${s}=0; trap 'c_${s}=$((c_${s} + 1))' ${s}`),
    'echo ready',
    // A question is a line: answer it with the counts. A trapped signal also ends `read`
    // early; a failed read with no new signal is the end of the file: jitctl is gone.
    'last=',
    `while :; do q=; if read -r q; then echo "$q ${counts}"; else now="${counts}"; [ "$now" != "$last" ] || exit 0; last=$now; fi; done`,
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
  let asked = 0;
  /** Per signal, the witness's count when jitctl last asked about it. */
  const matched = new Map<string, number>();
  const waiting = new Map<string, (counts: Map<string, number>) => void>();
  const stop = () => {
    usable = false;
    for (const answer of waiting.values()) answer(new Map());
    waiting.clear();
  };
  child.on('error', stop);
  child.on('exit', stop);
  child.stdin!.on('error', stop);
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
      const [id, ...pairs] = buffer.slice(0, nl).trim().split(/\s+/);
      buffer = buffer.slice(nl + 1);
      if (id === 'ready') {
        ready = true;
        continue;
      }
      const counts = new Map(
        pairs.map((p) => [p.slice(0, p.indexOf('=')), Number(p.slice(p.indexOf('=') + 1))]),
      );
      waiting.get(id ?? '')?.(counts);
      waiting.delete(id ?? '');
    }
  });
  // Neither the witness nor its pipes keep jitctl running.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stdin as unknown as { unref?: () => void }).unref?.();

  let queue: Promise<unknown> = Promise.resolve();
  const ask = (sig: NodeJS.Signals) =>
    new Promise<boolean | undefined>((resolve) => {
      if (!usable || !ready) {
        resolve(undefined);
        return;
      }
      const id = `q${++asked}`;
      const timer = setTimeout(() => {
        waiting.delete(id);
        usable = false;
        resolve(undefined);
      }, ANSWER_MS);
      waiting.set(id, (counts) => {
        clearTimeout(timer);
        if (!usable || counts.size === 0) {
          resolve(undefined);
          return;
        }
        const name = short(sig);
        const count = counts.get(name) ?? 0;
        // The witness got more than jitctl has matched so far: this one went to the group. All
        // of them count as matched now: two group signals the kernel delivered once to jitctl
        // (they merge while pending) must not make a later one sent to jitctl alone look like
        // the group's.
        const group = count > (matched.get(name) ?? 0);
        matched.set(name, count);
        resolve(group);
      });
      child.stdin!.write(`${id}\n`);
    });
  return {
    pid: child.pid,
    sawToo(sig) {
      // One question at a time, answered in order.
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
