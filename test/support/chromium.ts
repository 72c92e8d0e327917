import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

/**
 * Real headless Chromium for browser tests: Debian's /usr/bin/chromium driven by playwright-core
 * (`npx playwright install` cannot download browsers here). JITCTL_TEST_CHROMIUM names another
 * binary.
 */
export const CHROMIUM = process.env.JITCTL_TEST_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * A `BROWSER` command for a spawned jitctl: a tiny script that appends the URL jitctl wants to
 * open to a file, so the test can take it and drive Chromium there (jitctl runs $BROWSER with the
 * URL as its last argument, see openBrowser in src/cli/context.ts).
 */
export interface UrlCatcher {
  /** The value for the BROWSER variable. */
  command: string;
  /** Resolves with the next URL jitctl opened. */
  next(timeoutMs?: number): Promise<string>;
}

export function urlCatcher(dir: string): UrlCatcher {
  const file = join(dir, 'opened-urls.txt');
  const script = join(dir, 'catch-url.sh');
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${file}'\n`);
  chmodSync(script, 0o755);
  let taken = 0;
  return {
    command: script,
    async next(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const lines = existsSync(file)
          ? readFileSync(file, 'utf8').split('\n').filter(Boolean)
          : [];
        if (lines.length > taken) return lines[taken++]!;
        if (Date.now() > deadline) throw new Error(`no URL was opened within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
