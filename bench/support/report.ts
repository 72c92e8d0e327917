import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { round } from './stats.js';

/**
 * What every benchmark prints besides its figures: the machine (figures from a loaded 2-core
 * machine mean little without it), tables, and goals as met/missed. Tables and progress go to
 * stderr when `--json` puts the JSON document on stdout, so `… --json | jq` always works.
 */

export interface Machine {
  cpus: number;
  cpu_model: string;
  node: string;
  platform: string;
  /** 1, 5 and 15 minute load averages when the benchmark started. */
  load_avg: [number, number, number];
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux: os.cpus() below
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function machine(): Machine {
  const [a = 0, b = 0, c = 0] = loadavg();
  return {
    cpus: cpus().length,
    cpu_model: cpuModel(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    load_avg: [round(a, 2), round(b, 2), round(c, 2)],
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cpus} × ${m.cpu_model}, Node ${m.node}, load average ${m.load_avg.join(' / ')} (1/5/15 min)`;
}

/** A plain table, columns padded; numbers right-aligned. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)),
  );
  const numeric = headers.map((_, i) => rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 2 });
}

export interface Goal {
  what: string;
  /** The measured figure and the limit, in the same unit. */
  value: number;
  limit: number;
  /** `max`: the value must not exceed the limit; `min`: it must reach it. */
  kind: 'max' | 'min';
  unit: string;
}

export interface GoalResult extends Goal {
  met: boolean;
}

export function checkGoal(goal: Goal): GoalResult {
  const met = goal.kind === 'max' ? goal.value <= goal.limit : goal.value >= goal.limit;
  return { ...goal, value: round(goal.value, 2), met };
}

export function describeGoals(goals: GoalResult[]): string {
  return goals
    .map(
      (g) =>
        `  ${g.met ? 'met   ' : 'MISSED'}  ${g.what}: ${fmt(g.value)}${g.unit} (goal ${g.kind === 'max' ? '≤' : '≥'} ${fmt(g.limit)}${g.unit})`,
    )
    .join('\n');
}

/** Where human-readable output goes: stderr under --json, stdout otherwise. */
export function humanOut(json: boolean): (text: string) => void {
  return (text) => (json ? process.stderr : process.stdout).write(`${text}\n`);
}

/** Progress lines (always stderr, so stdout stays the figures). */
export function progress(text: string): void {
  process.stderr.write(`  … ${text}\n`);
}
