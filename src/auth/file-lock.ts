import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { JitError } from '../cli/errors.js';

/**
 * A lock between jitctl processes of one user (kubelogin's token cache does the same): a file
 * created with O_EXCL in the state directory. Providers rotate refresh tokens, so two processes
 * refreshing with the same one at once would invalidate each other's session; under this lock
 * exactly one refreshes and the others read its result.
 *
 * A lock older than `staleMs` is taken to belong to a process that died; refreshing takes a
 * fraction of that, and its requests time out well before it.
 */

export interface LockOptions {
  /** A lock file older than this is removed (default 30 s). */
  staleMs?: number;
  /** Give up after waiting this long (default 45 s). */
  waitMs?: number;
}

export class LockTimeoutError extends JitError {
  override name = 'LockTimeoutError';
}

export async function withFileLock<T>(
  ctx: Pick<Context, 'paths' | 'clock' | 'interruptSignal'>,
  name: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const staleMs = opts.staleMs ?? 30_000;
  const waitMs = opts.waitMs ?? 45_000;
  await mkdir(ctx.paths.stateDir, { recursive: true, mode: 0o700 });
  const path = join(ctx.paths.stateDir, `${name}.lock`);
  const token = `${randomBytes(12).toString('hex')}\n`;
  const started = ctx.clock.now();
  const signal = ctx.interruptSignal();
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(token);
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      const info = await stat(path);
      if (Date.now() - info.mtimeMs > staleMs) {
        await unlink(path).catch(() => {});
        continue;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (ctx.clock.now() - started > waitMs) {
      throw new LockTimeoutError(`another jitctl process has held ${path} for too long`, 1, {
        hint: 'if no other jitctl is running, delete that file and try again',
      });
    }
    await ctx.clock.sleep(25 + Math.floor(Math.random() * 75), signal);
  }
  try {
    return await fn();
  } finally {
    // Remove the lock only if it is still ours (a stale-lock breaker may have replaced it).
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current === token) await unlink(path).catch(() => {});
  }
}
