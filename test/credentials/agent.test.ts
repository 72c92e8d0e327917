import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { askAgent, checkAgentLocation } from '../../src/credentials/agent.js';
import { serveAgent } from '../../src/credentials/agent-server.js';

/**
 * The unlock agent's protocol, in-process: what it keeps and gives back, what it refuses, and
 * when it goes away. The real process, started by the CLI, with `jitctl lock` and the scan for
 * the key on disk, argv and environment, is test/e2e/tools.test.ts.
 */

const root = mkdtempSync(join(tmpdir(), 'jitctl-agent-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const KEY = Buffer.alloc(32, 7).toString('base64url');

function start(extra: { now?: () => number } = {}) {
  const dir = join(root, `a${++n}`);
  const socket = join(dir, 'agent.sock');
  const stop = new AbortController();
  let state: string | undefined;
  const done = serveAgent({
    socket,
    pid: 4242,
    signal: stop.signal,
    ready: (s) => {
      state = s;
    },
    ...extra,
  });
  const ready = async () => {
    while (state === undefined) await new Promise((r) => setImmediate(r));
    return state;
  };
  return { dir, socket, stop, done, ready };
}

/** Sends raw bytes and returns what the agent answered (or '' when it hung up). */
function raw(socket: string, text: string): Promise<string> {
  return new Promise((resolve) => {
    const c = createConnection(socket);
    let out = '';
    c.on('connect', () => c.write(text));
    c.on('data', (d) => {
      out += d.toString();
    });
    c.on('close', () => resolve(out));
    c.on('error', () => resolve(out));
  });
}

describe('the unlock agent', () => {
  it('keeps a key under its id, gives it back, reports its state without keys, and forgets on lock', async () => {
    const a = start();
    expect(await a.ready()).toBe('ready');
    expect(statSync(a.dir).mode & 0o777).toBe(0o700);
    expect(statSync(a.socket).mode & 0o777).toBe(0o600);
    expect(await askAgent(a.socket, { op: 'get', kid: 'k1' })).toEqual({ ok: false });
    const put = await askAgent(a.socket, { op: 'put', kid: 'k1', key: KEY, ttl_ms: 60_000 });
    expect(put).toMatchObject({ ok: true, expires_at: expect.any(Number) });
    expect(await askAgent(a.socket, { op: 'get', kid: 'k1' })).toMatchObject({
      ok: true,
      key: KEY,
    });
    const status = await askAgent(a.socket, { op: 'status' });
    expect(status).toEqual({
      ok: true,
      pid: 4242,
      keys: [{ kid: 'k1', expires_at: put!.expires_at }],
    });
    expect(JSON.stringify(status)).not.toContain(KEY);
    expect(await askAgent(a.socket, { op: 'lock' })).toEqual({ ok: true, forgot: 1 });
    await a.done;
    expect(await askAgent(a.socket, { op: 'status' })).toBeUndefined();
  });

  it('refuses malformed requests, changes nothing, and drops oversized ones', async () => {
    const a = start();
    await a.ready();
    for (const bad of [
      { op: 'put', kid: '../x', key: KEY, ttl_ms: 1000 },
      { op: 'put', kid: 'k', key: 'short', ttl_ms: 1000 },
      { op: 'put', kid: 'k', key: KEY, ttl_ms: 13 * 3_600_000 },
      { op: 'put', kid: 'k', key: KEY, ttl_ms: -1 },
      { op: 'put', kid: 'k', key: KEY },
      { op: 'shell', cmd: 'id' },
    ]) {
      expect((await askAgent(a.socket, bad))?.ok, JSON.stringify(bad)).toBe(false);
    }
    expect(await raw(a.socket, 'not json\n')).toBe('{"ok":false,"error":"unknown op"}\n');
    expect(await raw(a.socket, 'x'.repeat(20_000))).toBe('');
    expect((await askAgent(a.socket, { op: 'status' }))?.keys).toEqual([]);
    a.stop.abort();
    await a.done;
  });

  it('forgets a key when its time is up, and exits with its last key', async () => {
    const a = start();
    await a.ready();
    await askAgent(a.socket, { op: 'put', kid: 'k', key: KEY, ttl_ms: 50 });
    await a.done; // resolves once the key expired and the agent stopped
    expect(await askAgent(a.socket, { op: 'get', kid: 'k' })).toBeUndefined();
  });

  it('a second agent on the same socket leaves the first alone; a dead one’s socket is taken over', async () => {
    const a = start();
    await a.ready();
    const second = serveAgent({ socket: a.socket, pid: 1, ready: () => {} });
    await second;
    expect((await askAgent(a.socket, { op: 'status' }))?.pid).toBe(4242);
    a.stop.abort();
    await a.done;

    // A socket file nobody listens on (an agent that was killed): the next one replaces it.
    const b = start();
    await b.ready();
    b.stop.abort();
    await b.done;
    writeFileSync(b.socket, '');
    const stopC = new AbortController();
    let cReady = false;
    const c = serveAgent({
      socket: b.socket,
      pid: 7,
      ready: () => {
        cReady = true;
      },
      signal: stopC.signal,
    });
    while (!cReady) await new Promise((r) => setImmediate(r));
    expect((await askAgent(b.socket, { op: 'status' }))?.pid).toBe(7);
    stopC.abort();
    await c;
  });

  it('refuses a directory others can enter, and a socket path too long for the kernel', async () => {
    const dir = join(root, 'open');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    await expect(
      checkAgentLocation({ dir, socket: join(dir, 'agent.sock') }, false),
    ).rejects.toThrow(/group or others can access it \(mode 755\)/);
    await expect(
      serveAgent({ socket: join(dir, 'agent.sock'), pid: 1, ready: () => {} }),
    ).rejects.toThrow(/chmod|group or others/);
    const long = join(root, 'x'.repeat(120));
    await expect(
      checkAgentLocation({ dir: long, socket: join(long, 'agent.sock') }, true),
    ).rejects.toThrow(/too long for a Unix socket/);
  });
});
