import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Context, createContext, systemClock } from '../../src/cli/context.js';
import { DeniedError } from '../../src/cli/errors.js';
import { type TestIO, testIO } from '../../src/cli/io.js';
import { type RunningCommand, runCommand } from '../../src/exec/run-command.js';
import { waitFor } from '../credentials/fixtures.js';

/**
 * An extension while a command runs (issue 13): the running exec learns the grant's new end from
 * the long poll that follows the grant, and the handle's `moveExpiry` moves the notice and the
 * end of `--kill-at-expiry` with it. In this process, with real child processes and a clock
 * that puts the end a moment away.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-move-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function setup(inMs: number) {
  const io = testIO();
  const expiresAt = Date.now() + 60 * 60_000;
  const offset = expiresAt - inMs - Date.now();
  const ctx: Context = createContext({
    io,
    env: { PATH: process.env.PATH },
    clock: { now: () => Date.now() + offset, sleep: systemClock.sleep },
  });
  return { ctx, io: io as TestIO, expiresAt, now: () => Date.now() + offset };
}

describe('moving the end of a running command', () => {
  it('an extension moves --kill-at-expiry: the command outlives its first end, then ends at the new one', async () => {
    const t = setup(400);
    const d = join(dir, 'a');
    let handle: RunningCommand | undefined;
    const started = Date.now();
    const run = runCommand(t.ctx, {
      command: '/bin/sh',
      args: ['-c', `mkdir -p ${d}; echo $$ > ${d}/pid; exec sleep 300`],
      env: { PATH: process.env.PATH! },
      role: 'extended',
      expiresAt: t.expiresAt,
      atExpiry: 'end',
      watch: (command) => {
        handle = command;
        // The grant was extended by 1.2 s before its end came.
        command.moveExpiry(t.expiresAt + 1_200);
        return undefined;
      },
    }).catch((err: unknown) => err);
    await waitFor(() => (existsSync(join(d, 'pid')) ? true : undefined), 'the command');
    const err = await run;
    expect(err).toBeInstanceOf(DeniedError);
    expect((err as DeniedError).message).toBe(
      'the command was ended: the credential for extended expired',
    );
    // It ran past the first end (0.4 s) until the new one (1.6 s).
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(handle).toBeDefined();
    expect(readFileSync(join(d, 'pid'), 'utf8')).toMatch(/^\d+\n$/);
  });

  it('a shell’s notice at expiry moves too', async () => {
    const t = setup(300);
    const d = join(dir, 'b');
    const run = runCommand(t.ctx, {
      command: '/bin/sh',
      args: ['-c', `mkdir -p ${d}; while [ ! -e ${d}/stop ]; do sleep 0.02; done`],
      env: { PATH: process.env.PATH! },
      role: 'extended',
      expiresAt: t.expiresAt,
      atExpiry: 'notify',
      watch: (command) => {
        command.moveExpiry(t.expiresAt + 600);
        return undefined;
      },
    });
    const started = Date.now();
    await waitFor(() => (t.io.stderrText() ? true : undefined), 'the notice');
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(t.io.stderrText()).toMatch(/^\njitctl: the credential for extended has expired/);
    writeFileSync(join(d, 'stop'), '');
    expect(await run).toBe(0);
  });
});
