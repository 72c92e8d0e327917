import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ignoringTrampoline,
  inheritedIgnored,
  isInheritedIgnored,
  SIGIGN_ENV,
  signalName,
} from '../../src/exec/inherited-signals.js';
import { BIN } from '../support/cli.js';
import { buildRecorder, masked } from './recorder.js';

/**
 * The ignored-at-start set: what bin/jitctl.js's /bin/sh lines read before Node resets it, how
 * jitctl reads it back, and the /bin/sh trampoline that starts the command with it ignored
 * (libuv resets every disposition in a child), with argv passed on verbatim.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-sigign-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the launcher (bin/jitctl.js run by /bin/sh)', () => {
  // A copy of the launcher's sh lines in front of a script that prints what Node got.
  const probe = join(dir, 'probe.js');
  const launcher = readFileSync(BIN, 'utf8').split('\n').slice(0, 3).join('\n');
  writeFileSync(
    probe,
    `${launcher}\nprocess.stdout.write(JSON.stringify({ argv: process.argv.slice(2), sigign: process.env.${SIGIGN_ENV} ?? null }));\n`,
    { mode: 0o755 },
  );
  const run = (args: string[], ignore = '') =>
    JSON.parse(
      execFileSync('/bin/sh', ['-c', `trap '' ${ignore || '0'}; exec "$@"`, 'sh', probe, ...args], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH },
      }),
    ) as { argv: string[]; sigign: string | null };

  it('hands Node the ignored set for exec and shell, and argv verbatim', () => {
    const args = ['exec', 'r', '--', 'a b', '', '$HOME', '*', "'q'", '"d"', '-x', '--', '\\n'];
    const out = run(args, 'HUP INT');
    expect(out.argv).toEqual(args);
    expect(inheritedIgnored({ [SIGIGN_ENV]: out.sigign! })).toEqual([1, 2]);
    expect(run(['shell'], 'QUIT').sigign).toMatch(/^0+4$/);
  });

  it('reads nothing for other commands; nothing ignored reads as an empty set', () => {
    expect(run(['status'], 'HUP').sigign).toBeNull();
    expect(inheritedIgnored({ [SIGIGN_ENV]: run(['exec']).sigign! })).toEqual([]);
  });

  it('the real bin/jitctl.js answers --version through /bin/sh', () => {
    const version = JSON.parse(readFileSync(join(BIN, '..', '..', 'package.json'), 'utf8')).version;
    expect(execFileSync('/bin/sh', [BIN, '--version'], { encoding: 'utf8' })).toBe(`${version}\n`);
  });
});

describe('reading the set back', () => {
  it('takes the mask bit by bit, and ignores anything that is not one', () => {
    expect(inheritedIgnored({ [SIGIGN_ENV]: '0000000000000003' })).toEqual([1, 2]);
    expect(inheritedIgnored({ [SIGIGN_ENV]: '8000000000001000' })).toEqual([13, 64]);
    for (const junk of ['', 'xyz', '0x3', '1'.repeat(17), ' 3']) {
      expect(inheritedIgnored({ [SIGIGN_ENV]: junk }), junk).toEqual([]);
    }
    expect(inheritedIgnored({})).toEqual([]);
    expect(isInheritedIgnored({ [SIGIGN_ENV]: '1' }, 'SIGHUP')).toBe(true);
    expect(isInheritedIgnored({ [SIGIGN_ENV]: '1' }, 'SIGINT')).toBe(false);
    expect(signalName(2)).toBe('SIGINT');
    expect(signalName(6)).toBe('SIGABRT');
    expect(signalName(40)).toBeUndefined();
  });
});

describe('the trampoline', () => {
  const recorder = buildRecorder(dir);

  it('is not used when nothing was ignored', () => {
    expect(ignoringTrampoline([], 'ls', '/bin/ls', ['-l'])).toBeUndefined();
  });

  it('starts the command with exactly those signals ignored, argv verbatim', () => {
    const log = join(dir, 'trampoline.log');
    const t = ignoringTrampoline([1, 2, 13, 40], recorder, recorder, [log, 'extra arg'])!;
    writeFileSync(`${log}.stop`, ''); // it records how it started, then exits 3
    const r = spawnSync(t.file, t.args, { env: { PATH: process.env.PATH } });
    expect(r.status).toBe(3);
    const ready = readFileSync(log, 'utf8').split('\n')[0]!.split(' ');
    const mask = BigInt(`0x${ready[4]}`);
    for (const n of [1, 2, 13, 40]) expect(masked(mask, n), String(n)).toBe(true);
    expect(masked(mask, 15)).toBe(false);
  });

  it('passes every argument through untouched, a command named like an option by its path', () => {
    const args = ['a b', '', '$HOME', '*', "it's", '--', '-n'];
    const t = ignoringTrampoline([1], 'printf', '/usr/bin/printf', ['%s|', ...args])!;
    expect(execFileSync(t.file, t.args, { encoding: 'utf8' })).toBe(`${args.join('|')}|`);
    const odd = join(dir, '-odd');
    writeFileSync(odd, '#!/bin/sh\necho "odd: $*"\n', { mode: 0o755 });
    const o = ignoringTrampoline([1], '-odd', odd, ['x'])!;
    expect(execFileSync(o.file, o.args, { encoding: 'utf8', cwd: dir })).toBe('odd: x\n');
  });
});
