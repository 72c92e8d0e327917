import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  type CommandTree,
  carriesMarker,
  endCommandTree,
  findTree,
  SESSION_ID_ENV,
  sessionMarker,
  startTime,
} from '../../src/exec/command-tree.js';
import { waitFor } from '../credentials/fixtures.js';
import { gone } from './recorder.js';

/**
 * The command tree of an exec session with real processes: a grandchild that outlives its
 * parent, one that left the session (setsid and a double fork, adopted by init), one that
 * cleared its environment but stayed in the tree, a stopped one, one that ignores SIGTERM.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-tree-'));
const started: CommandTree[] = [];
// Whatever a failed test left running.
afterEach(async () => {
  for (const tree of started.splice(0)) await endCommandTree(tree, { graceMs: 0 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let runs = 0;
/** `sh -c script` with the session marker in its environment; $D is a directory of its own. */
function session(script: string, marker = sessionMarker(undefined)) {
  const d = join(dir, `run-${++runs}`);
  const child = spawn('/bin/sh', ['-c', `mkdir -p "$D"; ${script}`], {
    env: { PATH: process.env.PATH, D: d, [SESSION_ID_ENV]: marker.value },
    stdio: 'ignore',
  });
  // As run-command.ts builds it: environments are read only for processes started since.
  const tree = { rootPid: child.pid!, marker: marker.id, since: startTime(child.pid!) };
  started.push(tree);
  const pidOf = (name: string) =>
    waitFor(() => {
      const f = join(d, name);
      const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
      return text.endsWith('\n') ? Number(text) : undefined;
    }, `${name} to be written`);
  return { child, marker, pidOf, tree };
}

describe('findTree', () => {
  it('finds a grandchild that outlived its parent, a setsid double fork and an env -i child', async () => {
    const s = session(
      // A grandchild left behind; a double fork into a session of its own; a child that
      // cleared its environment; then the first process waits for its stop file.
      `sleep 300 & echo $! > "$D/grandchild"
       setsid sh -c 'sleep 300 & echo $! > "$D/daemon"' &
       env -i sleep 300 & echo $! > "$D/clean"
       wait`,
    );
    const grandchild = await s.pidOf('grandchild');
    const daemon = await s.pidOf('daemon');
    const clean = await s.pidOf('clean');
    const found = findTree(s.tree);
    expect(found.has(s.child.pid!)).toBe(true);
    expect(found.has(grandchild)).toBe(true);
    expect(found.has(daemon)).toBe(true); // marker only: it left the tree and the session
    expect(found.has(clean)).toBe(true); // tree only: its environment is empty
    expect(readFileSync(`/proc/${daemon}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]).not.toBe(
      String(s.child.pid),
    );
    // The same without the start-time shortcut.
    expect([...findTree({ ...s.tree, since: undefined }).keys()].sort()).toEqual(
      [...found.keys()].sort(),
    );
    // Nobody else: not this test process, not another session.
    expect(found.has(process.pid)).toBe(false);
    const other = session('sleep 300');
    await waitFor(() => (findTree(other.tree).size > 0 ? true : undefined), 'the other session');
    for (const pid of findTree(other.tree).keys()) expect(found.has(pid)).toBe(false);
  });

  it('a nested session’s processes carry the outer marker too', () => {
    const outer = sessionMarker(undefined);
    const inner = sessionMarker(outer.value);
    expect(inner.value).toBe(`${outer.id},${inner.id}`);
    const env = (v: string) => Buffer.from(`A=1\0${SESSION_ID_ENV}=${v}\0B=2\0`);
    expect(carriesMarker(env(inner.value), outer.id)).toBe(true);
    expect(carriesMarker(env(inner.value), inner.id)).toBe(true);
    expect(carriesMarker(env(outer.value), inner.id)).toBe(false);
    // At the very start, and not a look-alike variable or a prefix of an id.
    expect(carriesMarker(Buffer.from(`${SESSION_ID_ENV}=${outer.id}`), outer.id)).toBe(true);
    expect(carriesMarker(Buffer.from(`X_${SESSION_ID_ENV}=${outer.id}\0`), outer.id)).toBe(false);
    expect(carriesMarker(env(`${outer.id}x`), outer.id)).toBe(false);
    // Junk in an inherited value is dropped from the chain.
    expect(sessionMarker('bad id!,ok').value).toMatch(/^ok,[A-Za-z0-9_-]+$/);
  });
});

describe('endCommandTree', () => {
  it('SIGTERM to every process, wherever it went; nothing needs SIGKILL', async () => {
    const s = session(
      `sleep 300 & echo $! > "$D/grandchild"
       setsid sh -c 'sleep 300 & echo $! > "$D/daemon"' &
       wait`,
    );
    const grandchild = await s.pidOf('grandchild');
    const daemon = await s.pidOf('daemon');
    const onKill: number[][] = [];
    const r = await endCommandTree(s.tree, {
      graceMs: 5_000,
      onKill: (p) => onKill.push([...p]),
    });
    expect(r.killed).toBe(0);
    expect(r.left).toEqual([]);
    expect(r.signalled).toBeGreaterThanOrEqual(3);
    expect(onKill).toEqual([]);
    for (const pid of [s.child.pid!, grandchild, daemon]) expect(gone(pid), String(pid)).toBe(true);
  });

  it('a stopped process gets SIGCONT after SIGTERM, so it can act on it', async () => {
    const s = session('sleep 300 & echo $! > "$D/stopped"; wait');
    const stopped = await s.pidOf('stopped');
    process.kill(stopped, 'SIGSTOP');
    await waitFor(
      () => (/\) T /.test(readFileSync(`/proc/${stopped}/stat`, 'utf8')) ? true : undefined),
      'the process to stop',
    );
    const r = await endCommandTree(s.tree, { graceMs: 5_000 });
    expect(r.killed).toBe(0);
    expect(gone(stopped)).toBe(true);
  });

  it('what ignores SIGTERM gets SIGKILL when the grace ends, and the caller is told first', async () => {
    const s = session(
      `trap '' TERM
       setsid sh -c 'trap "" TERM; echo $$ > "$D/daemon"; while :; do sleep 0.05; done' &
       while :; do sleep 0.05; done`,
    );
    const daemon = await s.pidOf('daemon');
    const told: number[][] = [];
    const began = Date.now();
    const r = await endCommandTree(s.tree, { graceMs: 300, onKill: (p) => told.push([...p]) });
    expect(Date.now() - began).toBeGreaterThanOrEqual(300);
    expect(told).toHaveLength(1);
    expect(told[0]).toEqual(expect.arrayContaining([s.child.pid!, daemon]));
    expect(r.killed).toBeGreaterThanOrEqual(2);
    expect(r.left).toEqual([]);
    expect(gone(daemon)).toBe(true);
    expect(gone(s.child.pid!)).toBe(true);
  });

  it('a tree with nothing left returns at once', async () => {
    const s = session('exit 0');
    await new Promise((r) => s.child.once('exit', r));
    await waitFor(() => (gone(s.child.pid!) ? true : undefined), 'the process to be reaped');
    const began = Date.now();
    expect(await endCommandTree(s.tree, { graceMs: 5_000 })).toEqual({
      signalled: 0,
      killed: 0,
      left: [],
    });
    expect(Date.now() - began).toBeLessThan(1_000);
  });
});
