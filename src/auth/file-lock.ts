import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { JitError } from '../cli/errors.js';

/**
 * A lock between jitctl processes of one user (kubelogin's token cache does the same): a file
 * created with O_EXCL in the state directory. Providers rotate refresh tokens, so two processes
 * refreshing with the same one at once would invalidate each other's session; under this lock
 * exactly one refreshes and the others read its result.
 *
 * The holder touches the file every third of `staleMs`, so a lock not touched for `staleMs`
 * belongs to a process that died, however long the work under it takes. A stale lock is moved
 * aside atomically before it is removed: of several waiters that judged it stale, one moves it,
 * and a waiter that finds it moved a lock touched meanwhile (a new holder's) puts it back.
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
    if (await create(path, token)) break;
    try {
      const info = await stat(path);
      if (Date.now() - info.mtimeMs > staleMs) {
        await breakStale(path, token, staleMs);
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
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
  }, staleMs / 3);
  heartbeat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    // Remove the lock only if it is still ours (a stale-lock breaker may have replaced it).
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current === token) await unlink(path).catch(() => {});
  }
}

/** Creates the lock file holding `token`; false when it exists. A failed write leaves no file. */
async function create(path: string, token: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(token);
  } catch (err) {
    await unlink(path).catch(() => {});
    throw err;
  } finally {
    await handle.close();
  }
  return true;
}

/** Removes a lock judged stale, unless another waiter replaced it by a live one meanwhile. */
async function breakStale(path: string, token: string, staleMs: number): Promise<void> {
  const aside = `${path}.${token.trim()}.stale`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const info = await stat(aside).catch(() => undefined);
  if (info && Date.now() - info.mtimeMs <= staleMs) await link(aside, path).catch(() => {});
  await unlink(aside).catch(() => {});
}
