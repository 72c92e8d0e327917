/**
 * Prints the request lifecycle section of docs/architecture.md from the transition table
 * (src/server/requests/lifecycle/table.ts); `--write` puts it into the document.
 *
 *   npx tsx scripts/lifecycle-diagram.ts           # print
 *   npx tsx scripts/lifecycle-diagram.ts --write   # update docs/architecture.md
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { renderLifecycle, replaceSection } from '../src/server/requests/lifecycle/diagram.js';

const section = renderLifecycle();
if (process.argv.includes('--write')) {
  const file = resolve(import.meta.dirname, '../docs/architecture.md');
  writeFileSync(file, replaceSection(readFileSync(file, 'utf8'), section));
  process.stderr.write(`updated ${file}\n`);
} else {
  process.stdout.write(`${section}\n`);
}
