import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/api/version.js';
import { runCli, testHome } from '../support/cli.js';

const home = testHome();
afterAll(() => home.cleanup());

describe('jitctl basics', () => {
  it('keeps VERSION equal to package.json', () => {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });

  it('prints its version', async () => {
    const r = await runCli(['--version'], { env: home.env });
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('prints help with every verb of DESIGN.md', async () => {
    const r = await runCli(['--help'], { env: home.env });
    expect(r.code).toBe(0);
    for (const verb of [
      'login',
      'logout',
      'status',
      'request',
      'wait',
      'list',
      'show',
      'approve',
      'deny',
      'cancel',
      'revoke',
      'exec',
      'shell',
      'credential',
      'audit',
      'policy',
      'server',
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${verb}\\b`, 'm'));
    }
  });

  it('exits 2 on an unknown command, an unknown flag and a missing argument', async () => {
    const unknown = await runCli(['bogus'], { env: home.env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'bogus'");
    const flag = await runCli(['status', '--bogus'], { env: home.env });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("unknown option '--bogus'");
    const missing = await runCli(['request'], { env: home.env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing required argument 'role'");
  });

  it('exits 2 on an empty --server or --store instead of quietly using the configured one', async () => {
    const env = { ...home.env, JITCTL_SERVER: 'http://127.0.0.1:9', JITCTL_STORE: 'memory' };
    const server = await runCli(['list', '--server', ''], { env });
    expect(server.code).toBe(2);
    expect(server.stderr).toContain('--server "" is not a URL');
    const store = await runCli(['list', '--store', ''], { env });
    expect(store.code).toBe(2);
    expect(store.stderr).toContain('--store: unknown credential store ""');
  });
});

describe('jitctl and a closed pipe', () => {
  it('stops quietly when its reader goes away (jitctl --help | head -1)', async () => {
    const { spawnSync } = await import('node:child_process');
    const { BIN } = await import('../support/cli.js');
    const r = spawnSync(
      'bash',
      ['-c', `"${process.execPath}" "${BIN}" --help | head -1; echo "rc=\${PIPESTATUS[0]}"`],
      {
        env: home.env,
        encoding: 'utf8',
      },
    );
    expect(r.stdout).toBe('Usage: jitctl [options] [command]\nrc=0\n');
    expect(r.stderr).not.toContain('EPIPE');
  });
});
