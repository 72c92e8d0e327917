import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL server URL; each test creates its own database or schema in it. */
    pgUrl: string;
    /** The jitctl executable built for this run (a bin/jitctl.js twin over this run's bundle). */
    jitctlBin: string;
  }
}

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Once per test run: build the CLI bundle (end-to-end tests run the real binary) into a directory
 * of this run's own, so that parallel runs never rebuild files under each other, and start a
 * throwaway PostgreSQL server.
 */
export default async function setup(project: TestProject) {
  const out = join(ROOT, '.test-build', `${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  execFileSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/tsup/dist/cli-default.js'),
      '--silent',
      '--out-dir',
      join(out, 'dist'),
    ],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  // The same layout as the package: bin/ (a CommonJS entry), dist/, package.json.
  mkdirSync(join(out, 'bin'));
  for (const f of ['bin/jitctl.js', 'bin/compile-cache.js', 'bin/package.json', 'package.json'])
    copyFileSync(join(ROOT, f), join(out, f));
  // The documentation the CLI's hints point at, as in the package (package.json `files`).
  cpSync(join(ROOT, 'docs'), join(out, 'docs'), { recursive: true });
  const bin = join(out, 'bin', 'jitctl.js');
  const pg = await startPostgres();
  project.provide('pgUrl', pg.url);
  project.provide('jitctlBin', bin);
  return () => {
    pg.stop();
    rmSync(out, { recursive: true, force: true });
  };
}
