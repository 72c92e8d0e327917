import { execFile } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTour } from '../scripts/demo.js';
import { VERSION } from '../src/api/version.js';
import { BIN } from './support/cli.js';

/**
 * The npm package as a user gets it: `npm pack`, `npm install -g` of the tarball into a scratch
 * prefix, and the scripted tour run with the installed `jitctl` against `jitctl server --dev`.
 * The tarball is packed from this run's build (the same files `npm pack` takes from a checkout:
 * package.json `files`). npm resolves the dependencies afresh, as for a user, from its cache
 * where it can (`--prefer-offline`); no engine warning may appear on the Node this runs on.
 * better-sqlite3's native build (about a minute from source here, its prebuilt host being out of
 * reach) is taken from this checkout when the versions match, instead of compiling it again.
 */

const ROOT = resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const npmEnv = {
  ...process.env,
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  npm_config_loglevel: 'warn',
};

let work: string;
let tarball: string;
let prefix: string;
let installed: string;
let installOutput = '';

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'jitctl-package-'));
  const stage = join(work, 'stage');
  mkdirSync(stage);
  for (const f of ['package.json', 'README.md', 'LICENSE'])
    copyFileSync(join(ROOT, f), join(stage, f));
  for (const d of ['bin', 'docs']) cpSync(join(ROOT, d), join(stage, d), { recursive: true });
  cpSync(join(dirname(dirname(BIN)), 'dist'), join(stage, 'dist'), { recursive: true });
  // --ignore-scripts: prepack would build again; this run's build is already staged.
  const packed = await run(
    'npm',
    ['pack', '--ignore-scripts', '--pack-destination', work, '--json'],
    {
      cwd: stage,
      env: npmEnv,
    },
  );
  tarball = join(work, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);

  prefix = join(work, 'prefix');
  const install = await run(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', tarball],
    { env: npmEnv, maxBuffer: 16 * 1024 * 1024 },
  );
  installOutput = install.stdout + install.stderr;
  installed = join(prefix, 'lib', 'node_modules', 'jitctl');
  const sqlite = join(installed, 'node_modules', 'better-sqlite3');
  const version = (dir: string) =>
    (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const ours = join(ROOT, 'node_modules', 'better-sqlite3');
  if (version(sqlite) === version(ours)) {
    mkdirSync(join(sqlite, 'build', 'Release'), { recursive: true });
    copyFileSync(
      join(ours, 'build', 'Release', 'better_sqlite3.node'),
      join(sqlite, 'build', 'Release', 'better_sqlite3.node'),
    );
  } else {
    await run('npm', ['rebuild', 'better-sqlite3'], { cwd: installed, env: npmEnv });
  }
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds the CLI, the docs it points to, the README and the Apache-2.0 LICENSE; no sources or tests', async () => {
    const { stdout } = await run('tar', ['tzf', tarball]);
    const files = stdout
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'LICENSE',
        'bin/jitctl.js',
        'dist/cli.js',
      ]),
    );
    for (const doc of readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })) {
      if (statSync(join(ROOT, 'docs', doc)).isFile()) expect(files).toContain(`docs/${doc}`);
    }
    expect(files.some((f) => /^(src|test|scripts|bench)\//.test(f))).toBe(false);
    const license = readFileSync(join(installed, 'LICENSE'), 'utf8');
    expect(license).toContain('Apache License');
    expect(license).toContain('Version 2.0, January 2004');
    expect(license).toContain('END OF TERMS AND CONDITIONS');
    // Every page a hint names is in the package.
    const named = new Set<string>();
    const scan = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) scan(p);
        else
          for (const m of readFileSync(p, 'utf8').matchAll(/docPath\('([\w.-]+)'\)/g))
            named.add(m[1]!);
      }
    };
    scan(join(ROOT, 'src'));
    expect(named.size).toBeGreaterThan(0);
    for (const page of named) expect(files).toContain(`docs/${page}`);
  });

  it('installs with npm on the Node it claims, without engine warnings', () => {
    expect(installOutput).not.toMatch(/EBADENGINE|Unsupported engine/);
    const engines = (
      JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
        engines: { node: string };
      }
    ).engines.node;
    expect(engines).toBe('>=20.19.0');
    expect(existsSync(join(prefix, 'bin', 'jitctl'))).toBe(true);
  });

  it('the installed jitctl runs, and its help points at docs that exist', async () => {
    const bin = join(prefix, 'bin', 'jitctl');
    expect((await run(bin, ['--version'])).stdout).toBe(`${VERSION}\n`);
    const help = (await run(bin, ['--help'])).stdout;
    const docs = /Docs: (\S+)/.exec(help)?.[1];
    expect(docs).toBe(join(installed, 'docs', 'cli.md'));
    expect(existsSync(docs!)).toBe(true);
  });

  it('the tour passes with the installed jitctl against jitctl server --dev', async () => {
    let story = '';
    const code = await runTour([join(prefix, 'bin', 'jitctl')], (t) => {
      story += t;
    });
    expect(code, story).toBe(0);
    expect(story).toContain('✔ the tour is complete');
  }, 90_000);
});
