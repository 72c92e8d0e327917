import type { FastifyReply } from 'fastify';
import type { ChangeHub } from '../changes.js';
import type { ServerClock } from '../clock.js';

/**
 * The long poll of `GET /v1/requests/:id?wait=…`, for the revocation doors: wait on a key of the
 * change hub (a request id, or the revocations topic) until something changed, the wait is up,
 * the caller's own deadline comes (a grant's end), the client went away or the broker shuts
 * down. A wake-up only means "look again": `changed` re-reads and says whether the answer moved.
 */
export interface LongPoll {
  hub: ChangeHub;
  clock: ServerClock;
  key: string;
  waitMs: number;
  reply: FastifyReply;
  /** Re-reads; true when the answer differs from what the client has. */
  changed(): Promise<boolean>;
  /** When to look again regardless (ms since epoch), e.g. the grant's end; null: never. */
  deadline?(): number | null;
}

/** Resolves `false` when the client went away (answer nothing), `true` otherwise. */
export async function longPoll(p: LongPoll): Promise<boolean> {
  const gone = new AbortController();
  const onClose = () => {
    if (!p.reply.raw.writableFinished) gone.abort();
  };
  p.reply.raw.once('close', onClose);
  // Watch, then look once more: a change between the caller's read and this watch answers now.
  const watch = p.hub.watch(p.key);
  try {
    if (await p.changed()) return true;
    const until = Date.now() + p.waitMs;
    let looked: number | null = null;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) return true;
      const due = p.deadline?.() ?? null;
      // A deadline already looked at (and found to change nothing) is not waited for again.
      const untilDue =
        due === null || due === looked
          ? Number.POSITIVE_INFINITY
          : Math.max(0, due - p.clock.now()) + 5;
      if (due !== null && due <= p.clock.now()) looked = due;
      const outcome = await watch.next(Math.min(left, untilDue), gone.signal);
      if (outcome === 'aborted') return false;
      if (outcome === 'closed' || (await p.changed())) return true;
    }
  } finally {
    watch.close();
    p.reply.raw.off('close', onClose);
  }
}
