import { isAscii } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, runCli, type TestHome, testHome } from '../support/cli.js';

// bin/compile-cache.js: the hot commands run from dist/cli.cjs with a V8 code cache kept in the
// user's cache directory. A cache is a speed-up only: whatever is in that directory, the command
// works the same, and what jitctl writes there is private to the user.
describe('the code cache of the hot commands', () => {
  let home: TestHome;
  afterEach(() => home.cleanup());

  const cacheDir = () => join(home.dir, '.cache', 'jitctl');
  const cacheFiles = () => (existsSync(cacheDir()) ? readdirSync(cacheDir()) : []);
  const mode = (path: string) => statSync(path).mode & 0o777;

  it('is written after the first run (0600 in 0700), one per command, and the output is the same', async () => {
    home = testHome();
    const first = await runCli(['list', '--help'], { env: home.env });
    expect(first.code).toBe(0);
    const files = cacheFiles();
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^v8-list-v\d+\.\d+\.\d+-\w+-\d+-\d+-\d+\.bin$/);
    expect(mode(cacheDir())).toBe(0o700);
    expect(mode(join(cacheDir(), files[0]!))).toBe(0o600);
    const second = await runCli(['list', '--help'], { env: home.env });
    expect(second).toEqual(first);
    expect(cacheFiles()).toEqual(files);
    expect((await runCli(['show', '--help'], { env: home.env })).code).toBe(0);
    const after = cacheFiles();
    expect(after).toHaveLength(2);
    expect(after).toContain(files[0]);
    expect(after.find((f) => f !== files[0])).toMatch(/^v8-show-/);
  });

  it('a damaged cache is ignored and replaced', async () => {
    home = testHome();
    const first = await runCli(['status', '--help'], { env: home.env });
    const file = join(cacheDir(), cacheFiles()[0]!);
    writeFileSync(file, Buffer.alloc(4096, 7));
    const again = await runCli(['status', '--help'], { env: home.env });
    expect(again).toEqual(first);
    expect(readFileSync(file).equals(Buffer.alloc(4096, 7))).toBe(false);
  });

  it('a cache others can write is not used, and is replaced by a private one', async () => {
    home = testHome();
    const first = await runCli(['roles', '--help'], { env: home.env });
    const file = join(cacheDir(), cacheFiles()[0]!);
    writeFileSync(file, Buffer.alloc(4096, 7));
    chmodSync(file, 0o666);
    const again = await runCli(['roles', '--help'], { env: home.env });
    expect(again).toEqual(first);
    expect(mode(file)).toBe(0o600);
    expect(readFileSync(file).equals(Buffer.alloc(4096, 7))).toBe(false);
  });

  it('an unusable cache directory changes nothing but the speed', async () => {
    home = testHome();
    // XDG_CACHE_HOME is a file: nothing can be created under it.
    const blocker = join(home.dir, 'not-a-dir');
    writeFileSync(blocker, '');
    const env = { ...home.env, XDG_CACHE_HOME: blocker };
    const r = await runCli(['wait', '--help'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: jitctl wait');
    expect(r.stderr).toBe('');
    expect(readFileSync(blocker, 'utf8')).toBe('');
  });

  it('other commands, and JITCTL_ESM=1, run from the ES module build and write no cache', async () => {
    home = testHome();
    expect((await runCli(['--help'], { env: home.env })).code).toBe(0);
    expect((await runCli(['doctor', '--help'], { env: home.env })).code).toBe(0);
    const esm = await runCli(['list', '--help'], { env: { ...home.env, JITCTL_ESM: '1' } });
    expect(esm.code).toBe(0);
    expect(esm.stdout).toContain('Usage: jitctl list');
    expect(cacheFiles()).toEqual([]);
  });

  // The launcher reads an ASCII bundle as Latin-1 (faster than UTF-8); the build escapes what
  // esbuild leaves outside ASCII (comments, regular expression literals).
  it('reads the bundle the build wrote, which is ASCII only', () => {
    expect(isAscii(readFileSync(join(dirname(BIN), '..', 'dist', 'cli.cjs')))).toBe(true);
  });

  it('reads a bundle with other bytes as UTF-8', () => {
    home = testHome();
    const bundle = join(home.dir, 'bundle.cjs');
    // A comment and a regular expression literal outside ASCII, as esbuild leaves them.
    writeFileSync(bundle, "// déjà vu\nprocess.stdout.write(/[‘’]/.test('’') + ' é€ ✓');\n");
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(join(dirname(BIN), 'compile-cache.js'))}).runCached(${JSON.stringify(bundle)})`,
      ],
      { env: home.env, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('true é€ ✓');
  });
});
