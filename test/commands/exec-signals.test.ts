import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  fileStoreEnv,
  homeStore,
  seedCredential,
  sh,
  startCredentialBroker,
  waitFor,
} from '../credentials/fixtures.js';
import { buildRecorder, gone, masked, recording as newRecording } from '../exec/recorder.js';
import type { TestBroker } from '../support/broker.js';
import { BIN, testHome } from '../support/cli.js';

/**
 * Signals with real processes and the real binary, the way sudo behaves: each signal reaches the
 * command exactly once (sent to jitctl alone, to its whole process group, or by a terminal);
 * signals ignored when jitctl started stay ignored in jitctl and in the command (nohup,
 * `trap '' INT`); a command's signal death becomes jitctl's (a bash loop stops, Python sees -2);
 * job control at a terminal works. The command is a recorder (test/exec/recorder.ts) that writes
 * down every signal it gets; each case checks what it got and how jitctl ended.
 *
 * jitctl runs in a session of its own (no controlling terminal) unless under `script`, which
 * gives it a pseudo-terminal. Cases about ignored signals start it through bin/jitctl.js's /bin/sh
 * lines, as the installed command starts; the others with `node bin/jitctl.js`.
 */

const home = testHome();
let b: TestBroker;
let env: Record<string, string>;
let RECORDER: string;
const SIG = { HUP: 1, INT: 2, QUIT: 3, TERM: 15 };

beforeAll(async () => {
  b = await startCredentialBroker();
  env = fileStoreEnv(home, b.url);
  await seedCredential(homeStore(home), { role: 'prod-deploy', broker: b });
  RECORDER = buildRecorder(home.dir);
});
afterAll(async () => {
  home.cleanup();
  await b?.close();
});

// A failed case leaves nothing running: recorders are told to stop, detached groups are killed.
const leftovers: Array<() => void> = [];
afterEach(() => {
  for (const clear of leftovers.splice(0)) {
    try {
      clear();
    } catch {}
  }
});
const recording = (dir: string) => {
  const rec = newRecording(dir);
  leftovers.push(rec.stop);
  return rec;
};

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A process in a session of its own (its own process group, no terminal), output captured. */
function detached(file: string, args: string[], extra: Record<string, string> = {}) {
  const child: ChildProcess = spawn(file, args, {
    env: { ...env, ...extra },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const done = new Promise<Ended>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  leftovers.push(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  });
  return { child, done, group: (sig: NodeJS.Signals) => process.kill(-child.pid!, sig) };
}

const jitctl = (args: string[]) => [BIN, ...args];
const execRecorder = (log: string, ...more: string[]) =>
  jitctl(['exec', 'prod-deploy', '--', RECORDER, log, ...more]);
/** The state letter of a process (R, S, T, Z…). */
const state = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0];

describe('without a terminal', () => {
  it('each signal sent to jitctl alone reaches the command once; jitctl exits with its code', async () => {
    const rec = recording(home.dir);
    const run = detached(process.execPath, execRecorder(rec.path));
    const { parent, ignored } = await rec.ready();
    expect(parent).toBe(run.child.pid);
    expect(ignored).toBe(0n); // nothing ignored here: nothing made ignored
    const sent = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
    for (const sig of sent) {
      process.kill(parent, sig as NodeJS.Signals);
      await rec.waitCount(sig);
    }
    rec.stop();
    const r = await run.done;
    expect(r).toMatchObject({ code: 3, signal: null, stderr: '' });
    expect(rec.signals()).toEqual(sent);
  });

  it('a signal sent to the whole process group arrives once, not once more from jitctl', async () => {
    const rec = recording(home.dir);
    const run = detached(process.execPath, execRecorder(rec.path));
    const { parent, pgrp } = await rec.ready();
    expect(pgrp).toBe(run.child.pid); // the command shares jitctl's group
    for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGUSR1', 'SIGQUIT'] as const) {
      run.group(sig);
      await rec.waitCount(sig);
      // A marker sent to jitctl alone: jitctl handles signals in order, so a duplicate of
      // `sig` would have been passed on before it.
      const markers = rec.count('SIGWINCH') + 1;
      process.kill(parent, 'SIGWINCH');
      await rec.waitCount('SIGWINCH', markers);
      expect(rec.count(sig), sig).toBe(1);
    }
    rec.stop();
    const r = await run.done;
    expect(r).toMatchObject({ code: 3, signal: null, stderr: '' });
    expect(rec.signals().filter((s) => s !== 'SIGWINCH')).toEqual([
      'SIGTERM',
      'SIGHUP',
      'SIGINT',
      'SIGUSR1',
      'SIGQUIT',
    ]);
  });

  it('nohup: SIGHUP stays ignored in jitctl and in the command, and is not passed on', async () => {
    const rec = recording(home.dir);
    // As installed: the command runs bin/jitctl.js, whose /bin/sh lines see the ignored set.
    const run = detached('nohup', ['/bin/sh', ...execRecorder(rec.path)]);
    const { parent, ignored } = await rec.ready();
    expect(parent).toBe(run.child.pid);
    expect(masked(ignored, SIG.HUP)).toBe(true); // the command started with SIGHUP ignored
    process.kill(parent, 'SIGHUP'); // to jitctl alone
    run.group('SIGHUP'); // and to everyone, as a hangup would
    process.kill(parent, 'SIGUSR2'); // a marker jitctl does pass on
    await rec.waitCount('SIGUSR2');
    expect(rec.signals()).toEqual(['SIGUSR2']);
    expect(gone(parent)).toBe(false);
    rec.stop();
    const r = await run.done;
    expect(r).toMatchObject({ code: 3, signal: null });
    expect(r.stderr).not.toMatch(/error|bug/);
  });

  it("trap '' INT in the calling script: Ctrl-C's SIGINT ends nothing and is not passed on", async () => {
    const rec = recording(home.dir);
    const script = `trap '' INT; ${sh('/bin/sh', ...execRecorder(rec.path))}; echo "script went on: $?"`;
    const run = detached('/bin/sh', ['-c', script]);
    const { parent, ignored } = await rec.ready();
    expect(masked(ignored, SIG.INT)).toBe(true);
    expect(masked(ignored, SIG.HUP)).toBe(false); // only what was ignored
    run.group('SIGINT'); // what a terminal's Ctrl-C does
    process.kill(parent, 'SIGINT');
    process.kill(parent, 'SIGUSR2');
    await rec.waitCount('SIGUSR2');
    expect(rec.signals()).toEqual(['SIGUSR2']);
    // SIGTERM was not ignored: it is still passed on.
    process.kill(parent, 'SIGTERM');
    await rec.waitCount('SIGTERM');
    rec.stop();
    const r = await run.done;
    expect(r.stdout).toBe('script went on: 3\n');
    expect(r.code).toBe(0);
  });

  it('a bash loop interrupted by SIGINT stops: jitctl dies of the SIGINT its command died of', async () => {
    const first = recording(home.dir);
    const second = recording(home.dir);
    const loop = `for log in ${first.path} ${second.path}; do ${sh(process.execPath, BIN, 'exec', 'prod-deploy', '--', RECORDER)} "$log" die; done; echo loop went on`;
    const run = detached('/bin/bash', ['-c', loop]);
    await first.ready();
    run.group('SIGINT'); // Ctrl-C, to the whole foreground group
    const r = await run.done;
    expect(first.signals()).toEqual(['SIGINT']);
    expect(existsSync(second.path)).toBe(false); // the next privileged step never ran
    expect(r.stdout).toBe('');
    expect(r.signal).toBe('SIGINT'); // bash itself stopped, as it does for a child killed by SIGINT
  });

  it('the caller sees the same death: a signal, or 128+n for one that would dump core', async () => {
    const cases: Array<[string, NodeJS.Signals | null, number | null]> = [
      ['INT', 'SIGINT', null],
      ['TERM', 'SIGTERM', null],
      ['HUP', 'SIGHUP', null],
      ['KILL', 'SIGKILL', null],
      ['PIPE', 'SIGPIPE', null],
      ['SEGV', null, 139],
      ['QUIT', null, 131],
      ['ABRT', null, 134],
    ];
    await Promise.all(
      cases.map(async ([name, signal, code]) => {
        const r = await detached(process.execPath, [
          ...jitctl(['exec', 'prod-deploy', '--', 'sh', '-c', `echo before; kill -${name} $$`]),
        ]).done;
        expect({ name, signal: r.signal, code: r.code }).toEqual({ name, signal, code });
        expect(r.stdout).toBe('before\n'); // flushed before jitctl died
        expect(r.stderr).toBe('');
      }),
    );
  });

  it.skipIf(spawnSync('python3', ['-c', '0']).status !== 0)(
    'Python’s subprocess sees -2, as with env',
    async () => {
      const program =
        'import subprocess, sys; print(subprocess.run(sys.argv[1:]).returncode, flush=True)';
      const inner = ['sh', '-c', 'kill -INT $$'];
      // Not spawnSync: the broker jitctl asks runs in this process and must keep answering.
      const python = async (args: string[]) => {
        const { stdout } = await promisify(execFile)('python3', ['-c', program, ...args], { env });
        return stdout;
      };
      expect(await python(['env', ...inner])).toBe('-2\n');
      expect(await python([process.execPath, BIN, 'exec', 'prod-deploy', '--', ...inner])).toBe(
        '-2\n',
      );
    },
  );
});

/** `command` on a pseudo-terminal (util-linux `script`); `type` is the keyboard. */
function underPty(command: string) {
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    env: { ...env, TERM: 'dumb' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    type: (text: string) => child.stdin!.write(text),
    output: () => output,
    until: (pattern: RegExp) =>
      waitFor(() => (pattern.test(output) ? true : undefined), `${pattern} on the terminal`),
    done: done.then((code) => {
      child.stdin!.end();
      return code;
    }),
  };
}

describe('at a terminal', () => {
  it('the command sees a TTY on stdin, stdout and stderr', async () => {
    const pty = underPty(
      `exec ${sh(process.execPath, BIN, 'exec', 'prod-deploy', '--', 'sh', '-c')} 'test -t 0 && test -t 1 && test -t 2 && echo TTY-OK'`,
    );
    expect(await pty.done).toBe(0);
    expect(pty.output()).toContain('TTY-OK');
  });

  it('Ctrl-C, Ctrl-\\ and a resize reach the command once; kill -INT to jitctl alone is passed on', async () => {
    const rec = recording(home.dir);
    const pty = underPty(`exec ${sh(process.execPath, ...execRecorder(rec.path))}`);
    const { pid, parent } = await rec.ready();
    const marker = async () => {
      const markers = rec.count('SIGUSR2') + 1;
      process.kill(parent, 'SIGUSR2');
      await rec.waitCount('SIGUSR2', markers);
    };
    pty.type('\x03'); // the terminal sends SIGINT to the whole foreground process group
    await rec.waitCount('SIGINT');
    await marker();
    expect(rec.count('SIGINT')).toBe(1);
    pty.type('\x1c'); // SIGQUIT likewise
    await rec.waitCount('SIGQUIT');
    await marker();
    expect(rec.count('SIGQUIT')).toBe(1);
    const terminal = readlinkSync(`/proc/${pid}/fd/0`);
    execFileSync('stty', ['-F', terminal, 'cols', '97']); // SIGWINCH to the foreground group
    await rec.waitCount('SIGWINCH');
    await marker();
    expect(rec.count('SIGWINCH')).toBe(1);
    process.kill(parent, 'SIGINT'); // jitctl alone, while in the terminal's foreground
    await rec.waitCount('SIGINT', 2);
    rec.stop();
    expect(await pty.done).toBe(3);
    expect(rec.signals()).toEqual([
      'SIGINT',
      'SIGUSR2',
      'SIGQUIT',
      'SIGUSR2',
      'SIGWINCH',
      'SIGUSR2',
      'SIGINT',
    ]);
  });

  it('Ctrl-Z stops jitctl and the command, fg continues both, then Ctrl-C ends them once', async () => {
    const rec = recording(home.dir);
    const pty = underPty(`exec env PS1='$ ' /bin/bash --norc --noprofile -i`);
    await pty.until(/\$ $/);
    pty.type(`${sh(process.execPath, ...execRecorder(rec.path, 'die'))}\r`);
    const { pid, parent } = await rec.ready();
    pty.type('\x1a'); // Ctrl-Z
    await pty.until(/Stopped/);
    await waitFor(
      () => (state(pid) === 'T' && state(parent) === 'T' ? true : undefined),
      'both stopped',
    );
    pty.type('fg\r');
    await waitFor(
      () => (state(pid) !== 'T' && state(parent) !== 'T' ? true : undefined),
      'both running again',
    );
    pty.type('\x03');
    await waitFor(() => (gone(parent) ? true : undefined), 'jitctl to end');
    pty.type('echo "rc=$?"\r');
    await pty.until(/rc=130/);
    pty.type('exit\r');
    await pty.done;
    expect(rec.signals()).toEqual(['SIGINT']);
    expect(gone(pid)).toBe(true);
  });

  it('Ctrl-C ends a command that does not catch it, and jitctl with it (130)', async () => {
    const rec = recording(home.dir);
    const pty = underPty(`exec ${sh(process.execPath, ...execRecorder(rec.path, 'die'))}`);
    const { pid } = await rec.ready();
    pty.type('\x03');
    // script -e reports a signal death as 128+n.
    expect(await pty.done).toBe(130);
    expect(rec.signals()).toEqual(['SIGINT']);
    expect(gone(pid)).toBe(true);
  });
});

describe('--kill-at-expiry, end to end', () => {
  it('a real credential running out ends the command and what it left behind; exit 3', async () => {
    const h = testHome();
    try {
      // Long enough for jitctl to start on a busy machine; the in-process tests cover the rest.
      await seedCredential(homeStore(h), { role: 'brief', validMs: 2_500, broker: b });
      const d = h.dir;
      const run = detached(
        process.execPath,
        jitctl([
          'exec',
          'brief',
          '--kill-at-expiry',
          '--',
          'bash',
          '-c',
          `(sleep 300 & echo $! > ${d}/grandchild); setsid sh -c 'echo $$ > ${d}/daemon; exec sleep 300' & sleep 300; echo after`,
        ]),
        fileStoreEnv(h, b.url),
      );
      const pidOf = (name: string) =>
        waitFor(() => {
          const f = join(d, name);
          const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
          return text.endsWith('\n') ? Number(text) : undefined;
        }, name);
      const [grandchild, daemon] = await Promise.all([pidOf('grandchild'), pidOf('daemon')]);
      const r = await run.done;
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(
        'jitctl: the credential for brief expired; sending SIGTERM to the command and everything it started\n',
      );
      expect(r.stderr).toContain(
        'error: the command was ended: the credential for brief expired\n',
      );
      expect(gone(grandchild)).toBe(true);
      expect(gone(daemon)).toBe(true);
    } finally {
      h.cleanup();
    }
  });
});
