import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { ExitCode } from '../cli/errors.js';
import { checkPrivateDir, UnsafePathError } from './private-files.js';
import type { KeyCache } from './store-key.js';

/**
 * The unlock agent, client side: an opt-in cache of the unlocked file store, the way ssh-agent
 * and gpg-agent keep keys. A small jitctl process (`jitctl __agent`, src/credentials/agent-server.ts)
 * started on demand holds the store's key (never the passphrase) in memory for a bounded time and
 * answers on a Unix socket in a private directory; `jitctl lock` makes it forget and exit.
 *
 * The key crosses only that socket: never a file, argv or an environment variable. The agent is
 * started with an empty environment and its socket path as its only argument.
 *
 * Node has no SO_PEERCRED (the peer's uid on a Unix socket), so the agent cannot ask the kernel
 * who connected. Who can connect is settled by the directory instead: 0700 and owned by this
 * uid, checked by both sides before use, so only this user (and root, which a uid check admits
 * as well) can reach the socket.
 */

/** The socket path must fit `sun_path` (104 bytes on macOS, 108 on Linux, with the NUL). */
const MAX_SOCKET_PATH_BYTES = 103;
/** How long a request to the agent may take; a hung agent must not hang the command. */
const REQUEST_TIMEOUT_MS = 2_000;
/** How long a new agent may take to start listening. */
const START_TIMEOUT_MS = 10_000;

export interface AgentLocation {
  /** The private (0700) directory of the socket. */
  dir: string;
  socket: string;
}

/**
 * `$XDG_RUNTIME_DIR/jitctl/agent.sock` (a per-login tmpfs, gone at logout), else
 * `$XDG_STATE_HOME/jitctl/agent/agent.sock`.
 */
export function agentLocation(ctx: Pick<Context, 'env' | 'paths'>): AgentLocation {
  const runtime = ctx.env.XDG_RUNTIME_DIR;
  const dir = runtime ? join(runtime, 'jitctl') : join(ctx.paths.stateDir, 'agent');
  return { dir, socket: join(dir, 'agent.sock') };
}

/** Refuses a socket path the kernel would cut, and a directory others could reach. */
export async function checkAgentLocation(loc: AgentLocation, create: boolean): Promise<boolean> {
  const bytes = Buffer.byteLength(loc.socket);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new UnsafePathError(
      `the unlock agent's socket path is too long for a Unix socket (${bytes} bytes; at most ${MAX_SOCKET_PATH_BYTES}): ${loc.socket}`,
      ExitCode.Error,
      {
        hint: 'set XDG_RUNTIME_DIR (or XDG_STATE_HOME) to a shorter directory, or turn the agent off (JITCTL_AGENT_TIMEOUT=off)',
      },
    );
  }
  return checkPrivateDir(loc.dir, create, "the unlock agent's directory");
}

export interface AgentStatus {
  pid: number;
  keys: Array<{ kid: string; expires_at: number }>;
}

type Answer = Record<string, unknown>;

/**
 * One request to the agent (a JSON line each way, one exchange per connection). Undefined when no
 * agent listens, or it does not answer in time.
 */
export async function askAgent(socket: string, message: Answer): Promise<Answer | undefined> {
  // Loaded here, not at the top: this module rides along with the file store on every command
  // that uses it, agent or not, and start-up time is counted.
  const { createConnection } = await import('node:net');
  return new Promise((resolve) => {
    const conn = createConnection(socket);
    let text = '';
    let settled = false;
    const done = (value: Answer | undefined) => {
      if (settled) return;
      settled = true;
      conn.destroy();
      resolve(value);
    };
    conn.setTimeout(REQUEST_TIMEOUT_MS, () => done(undefined));
    conn.on('error', () => done(undefined));
    conn.on('connect', () => conn.write(`${JSON.stringify(message)}\n`));
    conn.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end !== -1) {
        try {
          const value = JSON.parse(text.slice(0, end)) as unknown;
          done(typeof value === 'object' && value !== null ? (value as Answer) : undefined);
        } catch {
          done(undefined);
        }
      } else if (text.length > 64 * 1024) done(undefined);
    });
    conn.on('end', () => done(undefined));
  });
}

/**
 * Starts an agent for `loc` and resolves once it listens (or another one already did). The agent
 * gets an empty environment (nothing of this process's secrets) and `/` as its directory.
 */
export async function startAgent(
  ctx: Pick<Context, 'self' | 'debug'>,
  loc: AgentLocation,
): Promise<boolean> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn(ctx.self.command, [...ctx.self.args, '__agent', '--socket', loc.socket], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
      cwd: '/',
      env: ctx.debug ? { JITCTL_DEBUG: '1' } : {},
    });
    let out = '';
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      child.stdout?.destroy();
      child.unref();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), START_TIMEOUT_MS);
    child.once('error', () => finish(false));
    child.once('exit', () => finish(/^(ready|running)$/m.test(out)));
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (/^(ready|running)$/m.test(out)) finish(true);
    });
  });
}

/** The agent's state, or undefined when none is running there. */
export async function agentStatus(loc: AgentLocation): Promise<AgentStatus | undefined> {
  if (!(await checkAgentLocation(loc, false))) return undefined;
  const a = await askAgent(loc.socket, { op: 'status' });
  if (a?.ok !== true || typeof a.pid !== 'number' || !Array.isArray(a.keys)) return undefined;
  return { pid: a.pid, keys: a.keys as AgentStatus['keys'] };
}

/** Tells the agent to forget every key and exit: the number of keys it held, or undefined. */
export async function lockAgent(loc: AgentLocation): Promise<number | undefined> {
  if (!(await checkAgentLocation(loc, false))) return undefined;
  const a = await askAgent(loc.socket, { op: 'lock' });
  return a?.ok === true && typeof a.forgot === 'number' ? a.forgot : undefined;
}

/**
 * The file store's key cache backed by the agent. A missing or silent agent is a cache miss; the
 * command then asks for the passphrase as usual and leaves the key with a (new) agent. Only an
 * unsafe location (another user's or an open directory, a path too long) is an error.
 */
export function agentCache(
  ctx: Pick<Context, 'env' | 'paths' | 'self' | 'debug'>,
  ttlMs: number,
): KeyCache {
  const loc = agentLocation(ctx);
  return {
    async get(kid) {
      if (!(await checkAgentLocation(loc, false))) return undefined;
      const a = await askAgent(loc.socket, { op: 'get', kid });
      if (a?.ok !== true || typeof a.key !== 'string') return undefined;
      return new Uint8Array(Buffer.from(a.key, 'base64url'));
    },
    async put(kid, key) {
      try {
        await checkAgentLocation(loc, true);
      } catch (err) {
        // An unsafe place is said; one that merely cannot be made (a read-only runtime
        // directory) only means no cache: the command goes on with the key it has.
        if (err instanceof UnsafePathError) throw err;
        return;
      }
      const message = {
        op: 'put',
        kid,
        key: Buffer.from(key).toString('base64url'),
        ttl_ms: ttlMs,
      };
      if ((await askAgent(loc.socket, message))?.ok === true) return;
      if (!(await startAgent(ctx, loc))) return;
      await askAgent(loc.socket, message);
    },
  };
}
