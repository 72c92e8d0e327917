import { chmod, stat, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { ExitCode, JitError } from '../cli/errors.js';

/**
 * The unlock agent itself (`jitctl __agent --socket PATH`, started by src/credentials/agent.ts):
 * holds file-store keys in memory, each until its own deadline, and answers one JSON line per
 * connection on its Unix socket:
 *
 *   {"op":"put","kid":K,"key":B64URL,"ttl_ms":N} → {"ok":true,"expires_at":MS}
 *   {"op":"get","kid":K}                        → {"ok":true,"key":B64URL,"expires_at":MS} | {"ok":false}
 *   {"op":"status"}                             → {"ok":true,"pid":P,"keys":[{"kid","expires_at"}]}
 *   {"op":"lock"}                               → {"ok":true,"forgot":N}, then it exits
 *
 * It exits when its last key expires, on `lock`, on SIGTERM/SIGINT/SIGHUP, when its socket is
 * removed or replaced, and when nobody gives it a key within a minute of starting. Keys are
 * zeroed as they are dropped. It never writes a key anywhere but to the socket.
 */

const MAX_LINE_BYTES = 16 * 1024;
const CONNECTION_TIMEOUT_MS = 2_000;
/** An agent that got no key this long after starting was started for nothing. */
const IDLE_EXIT_MS = 60_000;
/** How often the agent checks that its socket is still its own. */
const WATCH_MS = 5_000;
const KID = /^[A-Za-z0-9_-]{1,64}$/;
const KEY = /^[A-Za-z0-9_-]{43}$/;

interface Held {
  key: Buffer;
  expiresAt: number;
  timer: NodeJS.Timeout;
}

export interface AgentOptions {
  socket: string;
  /** Told "ready" once listening, or "running" when another agent already listens there. */
  ready(state: 'ready' | 'running'): void;
  /** Stops the agent (signals). */
  signal?: AbortSignal;
  /** Reported by `status` (for `jitctl doctor` and `jitctl lock`). */
  pid: number;
  now?: () => number;
}

export async function serveAgent(opts: AgentOptions): Promise<void> {
  const store = await import('./file-store.js');
  const { checkAgentLocation, MAX_AGENT_TIMEOUT_MS } = store;
  const now = opts.now ?? Date.now;
  const loc = { dir: dirname(opts.socket), socket: opts.socket };
  await checkAgentLocation(loc, true);
  const keys = new Map<string, Held>();
  let stopping = false;
  let finished!: () => void;
  const done = new Promise<void>((r) => {
    finished = r;
  });

  let idle: NodeJS.Timeout | undefined;
  let watch: NodeJS.Timeout | undefined;
  let ino: number | undefined;

  const server = createServer((conn) => handle(conn));
  const listened = await listen(server, opts.socket, store);
  if (!listened) {
    opts.ready('running');
    return;
  }
  await chmod(opts.socket, 0o600);
  ino = (await stat(opts.socket)).ino;

  const forget = (kid: string) => {
    const held = keys.get(kid);
    if (!held) return;
    clearTimeout(held.timer);
    held.key.fill(0);
    keys.delete(kid);
  };

  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const kid of [...keys.keys()]) forget(kid);
    clearTimeout(idle);
    clearInterval(watch);
    server.close();
    void stat(opts.socket)
      .then((st) => (st.ino === ino ? unlink(opts.socket) : undefined))
      .catch(() => {})
      .finally(finished);
  };

  if (keys.size === 0) idle = setTimeout(stop, IDLE_EXIT_MS);
  watch = setInterval(() => {
    stat(opts.socket).then(
      (st) => {
        if (st.ino !== ino) stop();
      },
      () => stop(),
    );
  }, WATCH_MS);
  opts.signal?.addEventListener('abort', stop, { once: true });
  if (opts.signal?.aborted) stop();

  function answer(message: unknown): { reply: Record<string, unknown>; after?: () => void } {
    const m = (typeof message === 'object' && message !== null ? message : {}) as Record<
      string,
      unknown
    >;
    switch (m.op) {
      case 'put': {
        const ttl = m.ttl_ms;
        if (typeof m.kid !== 'string' || !KID.test(m.kid)) return { reply: bad('kid') };
        if (typeof m.key !== 'string' || !KEY.test(m.key)) return { reply: bad('key') };
        if (
          typeof ttl !== 'number' ||
          !Number.isInteger(ttl) ||
          ttl < 1 ||
          ttl > MAX_AGENT_TIMEOUT_MS
        )
          return { reply: bad('ttl_ms') };
        forget(m.kid);
        const kid = m.kid;
        const expiresAt = now() + ttl;
        const timer = setTimeout(() => {
          forget(kid);
          if (keys.size === 0) stop();
        }, ttl);
        keys.set(kid, { key: Buffer.from(m.key, 'base64url'), expiresAt, timer });
        clearTimeout(idle);
        return { reply: { ok: true, expires_at: expiresAt } };
      }
      case 'get': {
        const held = typeof m.kid === 'string' ? keys.get(m.kid) : undefined;
        if (!held || held.expiresAt <= now()) return { reply: { ok: false } };
        return {
          reply: { ok: true, key: held.key.toString('base64url'), expires_at: held.expiresAt },
        };
      }
      case 'status':
        return {
          reply: {
            ok: true,
            pid: opts.pid,
            keys: [...keys].map(([kid, h]) => ({ kid, expires_at: h.expiresAt })),
          },
        };
      case 'lock':
        return { reply: { ok: true, forgot: keys.size }, after: stop };
      default:
        return { reply: { ok: false, error: 'unknown op' } };
    }
  }

  function handle(conn: Socket): void {
    let text = '';
    conn.setTimeout(CONNECTION_TIMEOUT_MS, () => conn.destroy());
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.length > MAX_LINE_BYTES) {
        conn.destroy();
        return;
      }
      const end = text.indexOf('\n');
      if (end === -1) return;
      conn.removeAllListeners('data');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text.slice(0, end));
      } catch {
        parsed = undefined;
      }
      const { reply, after } = answer(parsed);
      conn.end(`${JSON.stringify(reply)}\n`, () => after?.());
    });
  }

  opts.ready('ready');
  await done;
}

function bad(field: string): Record<string, unknown> {
  return { ok: false, error: `bad ${field}` };
}

/**
 * Listens on `socket`; false when a live agent already listens there. A socket file nobody
 * answers on (an agent that was killed) is removed first.
 */
async function listen(
  server: Server,
  socket: string,
  { askAgent, errno }: Pick<typeof import('./file-store.js'), 'askAgent' | 'errno'>,
): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socket, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return true;
    } catch (err) {
      if (errno(err) !== 'EADDRINUSE') {
        throw new JitError(
          `the unlock agent cannot listen on ${socket}: ${errno(err) ?? err}`,
          ExitCode.Error,
          {
            cause: err,
          },
        );
      }
      if ((await askAgent(socket, { op: 'status' }))?.ok === true) return false;
      await unlink(socket).catch(() => {});
    }
  }
  throw new JitError(`the unlock agent cannot listen on ${socket}`, ExitCode.Error);
}
