import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Context, createContext, systemClock } from '../../src/cli/context.js';
import { DeniedError } from '../../src/cli/errors.js';
import { type TestIO, testIO } from '../../src/cli/io.js';
import { type RunningCommand, runCommand } from '../../src/exec/run-command.js';
import { waitFor } from '../credentials/fixtures.js';
import { gone } from './recorder.js';

/**
 * The end of an exec session with real processes, in this process with a clock that says the
 * credential expires a moment from now (no waiting for a real credential to run out): the
 * command and everything it started are ended at expiry, wherever they went; what ignores
 * SIGTERM gets SIGKILL after the grace; jitctl then exits 3. The same `end` is what a revocation
 * calls (the `watch` hook). A shell gets notices instead.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let runs = 0;
/** A context whose clock puts expiry `inMs` from now, a fresh directory $D for the command. */
function setup(inMs: number) {
  const io = testIO();
  const expiresAt = Date.now() + 60 * 60_000;
  const offset = expiresAt - inMs - Date.now();
  const ctx: Context = createContext({
    io,
    env: { PATH: process.env.PATH },
    clock: { now: () => Date.now() + offset, sleep: systemClock.sleep },
  });
  const d = join(dir, `run-${++runs}`);
  const pidOf = (name: string) =>
    waitFor(() => {
      const f = join(d, name);
      const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
      return text.endsWith('\n') ? Number(text) : undefined;
    }, `${name} to be written`);
  const spec = (script: string) => ({
    command: '/bin/sh',
    args: ['-c', `mkdir -p "$D"; ${script}`],
    env: { PATH: process.env.PATH!, HOME: d, D: d, KUBE_TOKEN: 'the-credential' },
    role: 'brief',
    expiresAt,
  });
  return { ctx, io: io as TestIO, d, pidOf, spec };
}

describe('--kill-at-expiry', () => {
  it('ends the command and everything it started, wherever it went; jitctl exits 3', async () => {
    const t = setup(1_500);
    const run = runCommand(t.ctx, {
      ...t.spec(
        // The case: bash -c 'long-task; echo after', where long-task has a grandchild
        // that outlives it and a daemon that double-forked out of the session.
        `bash -c '(sleep 300 & echo $! > "$D/grandchild") ;
                  setsid sh -c "sleep 300 & echo \\$! > $D/daemon" ;
                  echo $$ > "$D/bash"; sleep 300; echo after > "$D/after"'`,
      ),
      atExpiry: 'end',
    }).catch((err: unknown) => err);
    const [bash, grandchild, daemon] = await Promise.all(
      ['bash', 'grandchild', 'daemon'].map((n) => t.pidOf(n)),
    );
    // Both left bash's tree: the grandchild's parent exited, the daemon is in its own session.
    expect(readFileSync(`/proc/${daemon}/environ`, 'utf8')).toContain('KUBE_TOKEN=the-credential');
    const err = await run;
    expect(err).toBeInstanceOf(DeniedError);
    expect((err as DeniedError).exitCode).toBe(3);
    expect((err as DeniedError).message).toBe(
      'the command was ended: the credential for brief expired',
    );
    for (const pid of [bash!, grandchild!, daemon!]) expect(gone(pid), String(pid)).toBe(true);
    expect(existsSync(join(t.d, 'after'))).toBe(false);
    expect(t.io.stderrText()).toBe(
      'jitctl: the credential for brief expired; sending SIGTERM to the command and everything it started\n',
    );
  });

  it('what ignores SIGTERM gets SIGKILL after the grace, with a line saying so', async () => {
    const t = setup(300);
    const run = runCommand(t.ctx, {
      ...t.spec(
        `trap '' TERM; setsid sh -c 'echo $$ > "$D/daemon"; while :; do sleep 0.05; done' & wait`,
      ),
      atExpiry: 'end',
      graceMs: 400,
    }).catch((err: unknown) => err);
    const daemon = await t.pidOf('daemon');
    const err = await run;
    expect((err as DeniedError).exitCode).toBe(3);
    expect(gone(daemon)).toBe(true);
    expect(t.io.stderrText()).toMatch(
      /sending SIGTERM to the command and everything it started\njitctl: [23] processes are still running 0\.4 s after SIGTERM; sending SIGKILL\n$/,
    );
  });

  it('warns a minute before', async () => {
    const t = setup(60_200);
    const run = runCommand(t.ctx, {
      ...t.spec('while [ ! -e "$D/stop" ]; do sleep 0.02; done; exit 4'),
      atExpiry: 'end',
    });
    await waitFor(() => (t.io.stderrText() ? true : undefined), 'the warning');
    expect(t.io.stderrText()).toMatch(
      /^warning: the credential for brief expires in 1m \(\d\d:\d\d\); the command and everything it started will get SIGTERM then\n$/,
    );
    writeFileSync(join(t.d, 'stop'), '');
    expect(await run).toBe(4);
  });

  it('when the command exits first, what it left running is ended with it', async () => {
    const t = setup(3_600_000);
    const code = await runCommand(t.ctx, {
      ...t.spec('sleep 300 & echo $! > "$D/left"; setsid sleep 300 & exit 5'),
      atExpiry: 'end',
    });
    expect(code).toBe(5);
    expect(gone(await t.pidOf('left'))).toBe(true);
    expect(t.io.stderrText()).toBe(
      'jitctl: the command exited and left 2 processes running (--kill-at-expiry); sending SIGTERM to everything it started\n',
    );
  });

  it('without it, nothing happens at expiry and what the command leaves keeps running', async () => {
    const t = setup(200);
    const code = await runCommand(t.ctx, {
      ...t.spec('sleep 300 & echo $! > "$D/left"; sleep 0.5; exit 0'),
      atExpiry: 'nothing',
    });
    expect(code).toBe(0);
    const left = await t.pidOf('left');
    expect(gone(left)).toBe(false);
    process.kill(left, 'SIGKILL');
    expect(t.io.stderrText()).toBe('');
  });
});

describe('ending a session from outside (a revocation)', () => {
  it('the watch hook gets a handle whose end(reason) ends it all; jitctl exits 3 with the reason', async () => {
    const t = setup(3_600_000);
    let handle: RunningCommand | undefined;
    let unwatched = false;
    const run = runCommand(t.ctx, {
      ...t.spec('setsid sh -c \'echo $$ > "$D/daemon"; exec sleep 300\' & sleep 300'),
      atExpiry: 'nothing',
      watch: (command) => {
        handle = command;
        return () => {
          unwatched = true;
        };
      },
    }).catch((err: unknown) => err);
    const daemon = await t.pidOf('daemon');
    expect(handle!.pid).toBeGreaterThan(0);
    expect(handle!.tree.rootPid).toBe(handle!.pid);
    const first = handle!.end('the request was revoked by lee');
    const second = handle!.end('said twice');
    await Promise.all([first, second]);
    const err = await run;
    expect((err as DeniedError).message).toBe(
      'the command was ended: the request was revoked by lee',
    );
    expect(gone(daemon)).toBe(true);
    expect(unwatched).toBe(true);
    expect(t.io.stderrText()).toBe(
      'jitctl: the request was revoked by lee; sending SIGTERM to the command and everything it started\n',
    );
  });
});

describe('jitctl shell at expiry', () => {
  it('a notice a minute before, without ending anything', async () => {
    const t = setup(60_200);
    const run = runCommand(t.ctx, {
      ...t.spec('while [ ! -e "$D/stop" ]; do sleep 0.02; done'),
      atExpiry: 'notify',
    });
    await waitFor(() => (t.io.stderrText() ? true : undefined), 'the notice');
    expect(t.io.stderrText()).toMatch(
      /^\njitctl: the credential for brief expires in 1m \(\d\d:\d\d\); finish up, or exit and request it again\n$/,
    );
    writeFileSync(join(t.d, 'stop'), '');
    expect(await run).toBe(0);
  });

  it('a notice at expiry; the shell keeps running', async () => {
    const t = setup(200);
    const run = runCommand(t.ctx, {
      ...t.spec('while [ ! -e "$D/stop" ]; do sleep 0.02; done; exit 6'),
      atExpiry: 'notify',
    });
    await waitFor(() => (t.io.stderrText() ? true : undefined), 'the notice');
    expect(t.io.stderrText()).toMatch(
      /^\njitctl: the credential for brief has expired \(\d\d:\d\d\); commands in this shell can no longer use it: exit the shell\n$/,
    );
    writeFileSync(join(t.d, 'stop'), '');
    expect(await run).toBe(6);
  });
});
