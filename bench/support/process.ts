import { readFileSync } from 'node:fs';

/**
 * Child processes the benchmarks time. They run with a clean environment: no NODE_OPTIONS, and
 * no NODE_EXTRA_CA_CERTS, which some machines (the development VMs among them) set globally and
 * which makes every Node process parse a CA bundle at start (about 130 ms here): timing jitctl
 * with it would measure the bundle, and every ratio to bare `node` would look better than it is.
 */

/** The variables that change how Node starts; never passed to a timed child. */
export const NODE_START_VARIABLES = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'] as const;

/** This process's environment without the variables that change how Node starts. */
export function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !(NODE_START_VARIABLES as readonly string[]).includes(k)) env[k] = v;
  }
  return env;
}

/**
 * CPU time (user + system) of this process's children that have exited and been waited for, in
 * ms: Linux's cutime + cstime from /proc/self/stat, in clock ticks of 10 ms (USER_HZ = 100), so
 * only a sum over many runs is precise. Undefined where /proc is missing.
 */
export function childrenCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // The fields after "(comm) ": state is index 0, cutime index 13, cstime index 14.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[13]) + Number(f[14]);
    return Number.isFinite(ticks) ? ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) that process `pid` has used so far, in ms: utime + stime of
 * /proc/PID/stat (clock ticks of 10 ms). A process's own CPU is not inflated by waiting for a
 * busy core, so it compares builds on a shared machine. Undefined where /proc is missing.
 */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after "(comm) ": state is index 0, utime index 11, stime index 12.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return Number.isFinite(ticks) ? ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}
