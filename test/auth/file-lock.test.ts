import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, withFileLock } from '../../src/auth/file-lock.js';
import { systemClock } from '../../src/cli/context.js';

/**
 * The lock between jitctl processes (one refresh at a time): never two holders, a live holder is
 * never taken for dead however long it works, a dead holder's lock is taken over, and a waiter
 * gives up with a clear error.
 */

const root = mkdtempSync(join(tmpdir(), 'jitctl-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const ctxIn = () => {
  const stateDir = join(root, `case-${++n}`);
  return {
    paths: { stateDir } as never,
    clock: systemClock,
    interruptSignal: () => new AbortController().signal,
    stateDir,
  };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs holders under one lock and reports the most that ever held it at once. */
function tracker() {
  let inside = 0;
  let most = 0;
  let ran = 0;
  return {
    async hold(ms: number) {
      inside++;
      most = Math.max(most, inside);
      await sleep(ms);
      inside--;
      ran++;
    },
    get most() {
      return most;
    },
    get ran() {
      return ran;
    },
  };
}

describe('withFileLock', () => {
  it('a holder working longer than the stale limit keeps the lock (it touches the file)', async () => {
    const ctx = ctxIn();
    const t = tracker();
    const first = withFileLock(ctx, 'refresh', () => t.hold(1_000), { staleMs: 300 });
    await sleep(100);
    const second = withFileLock(ctx, 'refresh', () => t.hold(10), { staleMs: 300 });
    await Promise.all([first, second]);
    expect(t.ran).toBe(2);
    expect(t.most).toBe(1);
  });

  it("a dead process's lock is taken over, by one waiter at a time", async () => {
    const ctx = ctxIn();
    const path = join(ctx.stateDir, 'refresh.lock');
    await withFileLock(ctx, 'warm-up', async () => {});
    writeFileSync(path, 'a process that died\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    const t = tracker();
    await Promise.all(
      Array.from({ length: 6 }, () =>
        withFileLock(ctx, 'refresh', () => t.hold(60), { staleMs: 500 }),
      ),
    );
    expect(t.ran).toBe(6);
    expect(t.most).toBe(1);
    // Nothing is left behind: no lock, no file moved aside.
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(ctx.stateDir).filter((f) => f.startsWith('refresh'))).toEqual([]);
  });

  it('gives up waiting for a live holder with a clear error, and the holder finishes', async () => {
    const ctx = ctxIn();
    const t = tracker();
    const holder = withFileLock(ctx, 'refresh', () => t.hold(600));
    await sleep(50);
    const waiter = withFileLock(ctx, 'refresh', () => t.hold(1), { waitMs: 200 });
    await expect(waiter).rejects.toBeInstanceOf(LockTimeoutError);
    await expect(waiter).rejects.toThrow(/another jitctl process has held .*refresh\.lock/);
    await holder;
    expect(t.ran).toBe(1);
  });
});
