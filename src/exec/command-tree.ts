import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Ending a command means ending everything it started, not only its first process: a
 * `bash -c 'long-task; echo after'` whose bash alone got SIGTERM leaves long-task running,
 * adopted by init, with the credential in its environment. Used when --kill-at-expiry's
 * credential expires, and by anything else that must end an exec session early (a revoked
 * grant).
 *
 * Which processes belong to a session, on Linux: every process whose environment carries the
 * session's marker ({@link SESSION_ID_ENV}, random per session, not secret), which catches the
 * ones that left the process group or the session (setsid, a double fork, a daemon adopted by
 * init), plus every descendant of those and of the command's first process (a process that
 * cleared its environment but stayed in the tree). /proc/<pid>/environ shows the environment a
 * process was started with, so unsetting the variable later does not hide it; a process started
 * with a fresh environment (`env -i`) that also left the tree is not found. Elsewhere (macOS:
 * no /proc) only the tree of parent and child processes is walked (`ps`), so a daemonized process
 * is not found. Only processes of the same user can be signalled at all.
 */

/** The session marker in the command's environment. */
export const SESSION_ID_ENV = 'JITCTL_SESSION_ID';

/** A new session marker; nested sessions append theirs, so an outer session's end reaches them. */
export function sessionMarker(outer: string | undefined): { id: string; value: string } {
  const id = randomBytes(9).toString('base64url');
  const chain = outer?.split(',').filter((m) => /^[A-Za-z0-9_-]{1,64}$/.test(m)) ?? [];
  return { id, value: [...chain.slice(-8), id].join(',') };
}

/** The processes of one exec session. */
export interface CommandTree {
  /** The command's first process (jitctl's own child). */
  readonly rootPid: number;
  /** This session's id in {@link SESSION_ID_ENV}. */
  readonly marker: string;
  /** Processes never to signal (jitctl's own helpers). */
  readonly exclude?: readonly number[];
  /**
   * When the first process started ({@link startTime}): only processes started since can carry
   * the marker, so only their environments are read (Linux; a scan is then a few ms).
   */
  readonly since?: number | undefined;
}

/** A process's start time in clock ticks since boot (Linux /proc/<pid>/stat field 22). */
export function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const value = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export interface EndOptions {
  /** How long after SIGTERM a process still running gets SIGKILL. */
  graceMs: number;
  /** Called once if some processes are still running when the grace ends, before SIGKILL. */
  onKill?: (pids: readonly number[]) => void;
}

export interface EndResult {
  /** How many processes got SIGTERM. */
  signalled: number;
  /** How many of those were still running after the grace and got SIGKILL. */
  killed: number;
  /** Processes still there at the end (another user's, or unkillable); normally empty. */
  left: number[];
}

/**
 * Ends every process of `tree`: SIGTERM (and SIGCONT to a stopped one, which could not act on
 * it otherwise), then the tree is looked at again with a growing pause (20 ms up to 250 ms) so
 * that processes forked meanwhile get SIGTERM too, until none is left or `graceMs` has passed;
 * then SIGKILL to what is left, repeated until none is left (at most 20 rounds). Resolves when
 * done. A pid that exits and is reused by another of the user's processes between the look and
 * the signal would be signalled too; pids are not reused that fast in practice.
 */
export async function endCommandTree(tree: CommandTree, options: EndOptions): Promise<EndResult> {
  const termed = new Set<number>();
  const term = (found: Map<number, string>) => {
    for (const [pid, state] of found) {
      if (termed.has(pid)) continue;
      termed.add(pid);
      signal(pid, 'SIGTERM');
      if (state === 'T' || state === 't') signal(pid, 'SIGCONT');
    }
  };
  const deadline = Date.now() + options.graceMs;
  let found = findTree(tree);
  term(found);
  let pause = 20;
  while (found.size > 0 && Date.now() < deadline) {
    await sleep(Math.max(1, Math.min(pause, deadline - Date.now())));
    pause = Math.min(pause * 2, 250);
    found = findTree(tree);
    term(found);
  }
  if (found.size === 0) return { signalled: termed.size, killed: 0, left: [] };
  options.onKill?.([...found.keys()]);
  const killed = new Set<number>();
  for (let round = 0; round < 20 && found.size > 0; round++) {
    for (const pid of found.keys()) {
      killed.add(pid);
      signal(pid, 'SIGKILL');
    }
    await sleep(round === 0 ? 10 : 50);
    found = findTree(tree);
  }
  return { signalled: termed.size, killed: killed.size, left: [...found.keys()] };
}

/** The session's live processes (pid → state letter), zombies left out. */
export function findTree(tree: CommandTree): Map<number, string> {
  let procs: Map<number, Proc>;
  try {
    procs = process.platform === 'linux' ? fromProc(tree.marker, tree.since) : fromPs();
  } catch {
    return new Map();
  }
  const skip = new Set([process.pid, ...(tree.exclude ?? [])]);
  const members = new Set<number>();
  for (const [pid, p] of procs) if (p.marked || pid === tree.rootPid) members.add(pid);
  // Descendants of the members, whatever their environment.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!members.has(pid) && members.has(p.ppid)) {
        members.add(pid);
        grew = true;
      }
    }
  }
  const out = new Map<number, string>();
  for (const pid of members) {
    const p = procs.get(pid);
    if (p && !skip.has(pid) && p.state !== 'Z' && p.state !== 'X') out.set(pid, p.state);
  }
  return out;
}

interface Proc {
  ppid: number;
  state: string;
  marked: boolean;
}

function fromProc(marker: string, since: number | undefined): Map<number, Proc> {
  const procs = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let marked = false;
    if (since === undefined || Number(fields[19]) >= since) {
      try {
        marked = carriesMarker(readFileSync(`/proc/${name}/environ`), marker);
      } catch {
        // another user's process, or gone
      }
    }
    procs.set(Number(name), { state: fields[0] ?? '', ppid: Number(fields[1]), marked });
  }
  return procs;
}

const KEY = Buffer.from(`${SESSION_ID_ENV}=`);

/** Whether an environ block (NUL-separated) has the marker among JITCTL_SESSION_ID's ids. */
export function carriesMarker(environ: Buffer, marker: string): boolean {
  for (let at = environ.indexOf(KEY); at !== -1; at = environ.indexOf(KEY, at + 1)) {
    if (at !== 0 && environ[at - 1] !== 0) continue;
    const end = environ.indexOf(0, at);
    const value = environ.subarray(at + KEY.length, end === -1 ? undefined : end).toString();
    if (value.split(',').includes(marker)) return true;
  }
  return false;
}

function fromPs(): Map<number, Proc> {
  const out = execFileSync('ps', ['-A', '-o', 'pid=', '-o', 'ppid=', '-o', 'stat='], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 5_000,
  });
  const procs = new Map<number, Proc>();
  for (const line of out.split('\n')) {
    const [pid, ppid, stat] = line.trim().split(/\s+/);
    if (pid && ppid && stat) {
      procs.set(Number(pid), { ppid: Number(ppid), state: stat[0] ?? '', marked: false });
    }
  }
  return procs;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone, or not ours
  }
}
