import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Where a page of jitctl's documentation is on this machine: the `docs/` directory shipped in the
 * npm package (package.json `files`), found next to the running code: `dist/` in the package,
 * `src/api/` in a checkout. Hints name this absolute path, which the person can open, rather than a
 * path relative to a repository they may not have. Falls back to naming the page in the package.
 */
export function docPath(page: string): string {
  for (const up of ['../docs/', '../../docs/']) {
    try {
      const path = fileURLToPath(new URL(`${up}${page}`, import.meta.url));
      if (existsSync(path)) return path;
    } catch {
      // not a file: URL (bundled elsewhere): try the next
    }
  }
  return `docs/${page} in the jitctl package`;
}
