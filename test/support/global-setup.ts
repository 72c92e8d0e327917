import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL server URL; each test creates its own database or schema in it. */
    pgUrl: string;
  }
}

/**
 * Once per test run: build dist/ (end-to-end tests run the real `jitctl` binary, bin/jitctl.js)
 * and start a throwaway PostgreSQL server.
 */
export default async function setup(project: TestProject) {
  execFileSync(process.execPath, ['node_modules/tsup/dist/cli-default.js', '--silent'], {
    stdio: 'inherit',
  });
  const pg = await startPostgres();
  project.provide('pgUrl', pg.url);
  return () => pg.stop();
}
