import { describe, expect, it } from 'vitest';
import { ChangeHub } from '../../src/server/changes.js';

/**
 * The change hub's watches: a long poll takes one before it reads what it waits on, so a change
 * committed between that read and the wait is not lost (the poll would otherwise sleep for its
 * whole wait, up to 60 s). Waits here are short and only ever reached when the hub is broken.
 */
describe('ChangeHub watches', () => {
  it('keeps a change published before the wait began (no lost wake-up)', async () => {
    const hub = new ChangeHub();
    const watch = hub.watch('req_a');
    hub.publish('req_a'); // e.g. committed while the poll was still reading the request
    expect(await watch.next(200)).toBe('changed');
    watch.close();
  });

  it('stays registered across waits until closed', async () => {
    const hub = new ChangeHub();
    const watch = hub.watch('req_a');
    const first = watch.next(5_000);
    hub.publish('req_a');
    expect(await first).toBe('changed');
    hub.publish('req_a'); // between the re-read and the next wait
    expect(await watch.next(200)).toBe('changed');
    expect(await watch.next(20)).toBe('timeout'); // told once, not forever
    expect(hub.waiting).toBe(1);
    watch.close();
    expect(hub.waiting).toBe(0);
    hub.publish('req_a'); // nobody left: nothing to do
  });

  it("is not woken by another key's change", async () => {
    const hub = new ChangeHub();
    const watch = hub.watch('req_a');
    hub.publish('req_b');
    expect(await watch.next(20)).toBe('timeout');
    watch.close();
  });

  it('answers every watch on wakeAll, and on close for good', async () => {
    const hub = new ChangeHub();
    const a = hub.watch('req_a');
    const b = hub.watch('req_b');
    const waiting = a.next(5_000);
    hub.wakeAll();
    expect(await waiting).toBe('changed');
    expect(await b.next(200)).toBe('changed');
    hub.close();
    expect(await a.next(5_000)).toBe('closed');
    expect(await a.next(5_000)).toBe('closed');
    expect(await hub.watch('req_c').next(5_000)).toBe('closed');
    expect(await hub.wait('req_d', 5_000)).toBe('closed');
  });

  it('ends a wait when its signal aborts or its watch closes', async () => {
    const hub = new ChangeHub();
    const watch = hub.watch('req_a');
    const gone = new AbortController();
    const waiting = watch.next(5_000, gone.signal);
    gone.abort();
    expect(await waiting).toBe('aborted');
    const again = watch.next(5_000);
    watch.close();
    expect(await again).toBe('aborted');
    expect(hub.waiting).toBe(0);
  });

  it('wait() is one watch for one change', async () => {
    const hub = new ChangeHub();
    const waiting = hub.wait('req_a', 5_000);
    expect(hub.waiting).toBe(1);
    hub.publish('req_a');
    expect(await waiting).toBe('changed');
    expect(hub.waiting).toBe(0);
  });
});
