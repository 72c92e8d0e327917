import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Builds dist/ when it is missing or older than the sources, so that the tour (`npm run demo`) and
 * the benchmarks run the code that is checked out, not a stale bundle, and `npm ci && npm run demo`
 * works on a fresh clone without a separate build step.
 */

export const ROOT = resolve(import.meta.dirname, '..');
export const BIN = join(ROOT, 'bin', 'jitctl.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Returns whether it built (and says so on stderr). */
export function ensureBuilt(): boolean {
  const bundle = join(ROOT, 'dist', 'cli.js');
  const sources = Math.max(
    newestMtime(join(ROOT, 'src')),
    statSync(join(ROOT, 'tsup.config.ts')).mtimeMs,
    statSync(join(ROOT, 'package.json')).mtimeMs,
  );
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= sources) return false;
  process.stderr.write(
    existsSync(bundle) ? 'dist/ is older than src/: building…\n' : 'building dist/…\n',
  );
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'tsup', 'dist', 'cli-default.js'), '--silent'],
    { cwd: ROOT, stdio: 'inherit' },
  );
  return true;
}
