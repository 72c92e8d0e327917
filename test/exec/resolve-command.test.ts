import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { JitError } from '../../src/cli/errors.js';
import { resolveCommand } from '../../src/exec/resolve-command.js';

/**
 * Finding the command before it starts, with each way of failing said as it is and the shell's
 * exit codes: 127 not found, 126 found but cannot be run.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-resolve-'));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const a = join(dir, 'a');
const b = join(dir, 'b');
mkdirSync(a);
mkdirSync(b);
writeFileSync(join(a, 'tool'), '#!/bin/sh\n', { mode: 0o644 }); // found first, not runnable
writeFileSync(join(b, 'tool'), '#!/bin/sh\n', { mode: 0o755 }); // the one execvp would run
mkdirSync(join(a, 'dironly'));
writeFileSync(join(a, 'plain'), '#!/bin/sh\n', { mode: 0o644 });

const failure = (command: string, path?: string) => {
  try {
    resolveCommand(command, path);
  } catch (err) {
    const e = err as JitError;
    return { code: e.exitCode, message: e.message, hint: e.hint };
  }
  throw new Error(`${command} was found`);
};

describe('resolveCommand', () => {
  it('searches PATH as execvp does: the first runnable one wins', () => {
    expect(resolveCommand('tool', `${a}:${b}`)).toBe(join(b, 'tool'));
    expect(resolveCommand('sh', '/nonexistent:/bin')).toBe('/bin/sh');
    // An empty entry is the current directory.
    const here = process.cwd();
    try {
      process.chdir(b);
      expect(resolve(resolveCommand('tool', `/nonexistent:`))).toBe(join(b, 'tool'));
    } finally {
      process.chdir(here);
    }
  });

  it('not found: 127, by name or by path', () => {
    expect(failure('no-such-tool', `${a}:${b}`)).toEqual({
      code: 127,
      message: 'no-such-tool: command not found',
      hint: 'check the name, or give its path',
    });
    expect(failure(join(a, 'missing'))).toMatchObject({
      code: 127,
      message: `${join(a, 'missing')}: no such file`,
    });
    expect(failure(join(a, 'plain', 'below'))).toMatchObject({ code: 127 }); // ENOTDIR
    expect(failure('')).toMatchObject({ code: 127, message: 'the command is empty' });
  });

  it('a directory is a directory, not a permission problem', () => {
    expect(failure(join(a, 'dironly'))).toEqual({
      code: 126,
      message: `${join(a, 'dironly')}: is a directory`,
      hint: 'name a program to run, not a directory',
    });
    expect(failure('dironly', a)).toMatchObject({
      code: 126,
      message: `dironly: is a directory (${join(a, 'dironly')})`,
    });
  });

  it('no execute permission: says so, with the chmod that fixes it', () => {
    expect(failure(join(a, 'plain'))).toEqual({
      code: 126,
      message: `${join(a, 'plain')}: not executable`,
      hint: `it has no execute permission; if it is meant to be run: chmod +x ${join(a, 'plain')}`,
    });
    expect(failure('plain', a)).toMatchObject({
      code: 126,
      message: `plain: not executable (${join(a, 'plain')})`,
    });
  });

  it('names are shown safely', () => {
    expect(failure('evil\u001b[31m')).toMatchObject({ code: 127 });
    expect(failure('evil\u001b[31m').message).not.toContain('\u001b');
  });

  const asNobody =
    process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0
      ? (script: string) =>
          execFileSync(
            'setpriv',
            [
              '--reuid=65534',
              '--regid=65534',
              '--clear-groups',
              process.execPath,
              '--import',
              resolve('node_modules/tsx/dist/loader.mjs'),
              '-e',
              script,
            ],
            { encoding: 'utf8' },
          )
      : undefined;

  it.skipIf(!asNobody)(
    'permission denied: execute bits that leave you out, a closed directory',
    () => {
      const owner = join(dir, 'owner-only');
      writeFileSync(owner, '#!/bin/sh\n', { mode: 0o700 });
      const closed = join(dir, 'closed');
      mkdirSync(closed, { mode: 0o700 });
      writeFileSync(join(closed, 'prog'), '#!/bin/sh\n', { mode: 0o755 });
      const out = asNobody!(`
      import(${JSON.stringify(resolve('src/exec/resolve-command.ts'))}).then((m) => {
        for (const c of ${JSON.stringify([owner, join(closed, 'prog')])}) {
          try { m.resolveCommand(c, '/usr/bin'); console.log('found'); }
          catch (e) { console.log(JSON.stringify([e.exitCode, e.message, e.hint])); }
        }
      });`);
      expect(
        out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ).toEqual([
        [
          126,
          `${owner}: permission denied`,
          'you are not allowed to execute it (its permissions leave you out)',
        ],
        [
          126,
          `${join(closed, 'prog')}: permission denied`,
          'a directory on its path is not open to you',
        ],
      ]);
    },
  );
});
