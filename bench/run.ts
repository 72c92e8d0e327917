/**
 * `npm run bench`: the five sections of issue #6, one after another, each in its own process so
 * that one section's broker, caches and heap never weigh on the next. Builds dist/ first when it
 * is missing or older than src/ (a fresh clone after `npm ci` works as is).
 *
 *   npm run bench [-- --only startup,wakeup,throughput,audit,list] [--json] [--quick]
 *
 * Every section prints its table and goals; `--json` prints one JSON document with every
 * section's figures instead. Either way the figures are also written to
 * bench/results/<time>.json (ignored by git) for docs/performance.md. `--quick` shrinks every
 * section (fewer runs, shorter loads, 100,000 audit events) to check the suite itself in about a
 * couple of minutes; its figures are not the ones the goals are about. Each section also runs
 * alone (`npx tsx bench/startup.ts --runs 50`); each file's header lists its flags.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../scripts/ensure-built.js';
import { hasFlag, valueFlag } from './support/args.js';
import { describeMachine, machine } from './support/report.js';

const SECTIONS = ['startup', 'wakeup', 'throughput', 'audit', 'list'] as const;
type Section = (typeof SECTIONS)[number];

const FILES: Record<Section, string> = {
  startup: 'startup.ts',
  wakeup: 'wakeup.ts',
  throughput: 'throughput.ts',
  audit: 'audit.ts',
  list: 'list-scale.ts',
};

const QUICK: Record<Section, string[]> = {
  startup: ['--runs', '10'],
  wakeup: ['--runs', '10'],
  throughput: ['--duration', '2', '--clients', '1,32'],
  audit: ['--events', '100000', '--runs', '1', '--duration', '2'],
  list: ['--requests', '20000', '--samples', '50'],
};

function selected(): Section[] {
  const only = valueFlag('only');
  if (only === undefined) return [...SECTIONS];
  const names = only.split(',').filter(Boolean);
  const bad = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
  if (names.length === 0 || bad.length > 0) {
    throw new Error(`--only takes sections separated by commas: ${SECTIONS.join(', ')}`);
  }
  return names as Section[];
}

/** Runs one section; resolves with its JSON figures (it always runs with --json). */
function runSection(section: Section, quick: boolean, echo: boolean): Promise<unknown> {
  const args = [
    ...process.execArgv,
    join(ROOT, 'bench', FILES[section]),
    '--json',
    ...(quick ? QUICK[section] : []),
  ];
  return new Promise((resolve, reject) => {
    // The section writes its table to stderr when --json is on; pass it through as it comes.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr!.on('data', (c: Buffer) => {
      (echo ? process.stdout : process.stderr).write(c);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) {
        reject(new Error(`bench/${FILES[section]} failed (exit ${code})`));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`bench/${FILES[section]} printed no JSON figures`));
      }
    });
  });
}

async function main(): Promise<void> {
  const json = hasFlag('json');
  const quick = hasFlag('quick');
  const sections = selected();
  ensureBuilt();
  const started = new Date();
  const m = machine();
  const say = (text: string) => (json ? process.stderr : process.stdout).write(`${text}\n`);
  say(`jitctl benchmarks${quick ? ' (--quick: sizes shrunk, figures not comparable)' : ''}`);
  say(`machine: ${describeMachine(m)}\n`);
  const results: unknown[] = [];
  const failures: string[] = [];
  for (const section of sections) {
    try {
      results.push(await runSection(section, quick, !json));
    } catch (err) {
      failures.push((err as Error).message);
      say(`error: ${(err as Error).message}\n`);
    }
  }
  const doc = {
    started_at: started.toISOString(),
    finished_at: new Date().toISOString(),
    quick,
    machine: m,
    sections: results,
    failures,
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  if (json) process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  say(`figures written to ${file}`);
  if (failures.length > 0) process.exitCode = 1;
}

await main();
