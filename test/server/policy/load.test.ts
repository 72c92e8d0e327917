import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicyFile, PolicyError } from '../../../src/server/policy/index.js';
import { role } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'jitctl-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failure(path: string): Promise<string> {
  try {
    await loadPolicyFile(path);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    const issues = (err as PolicyError).issues;
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file: path, path: '' });
    return (err as PolicyError).message;
  }
  throw new Error(`expected ${path} to be refused`);
}

describe('loadPolicyFile', () => {
  it('loads a valid file', async () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, role());
    expect([...(await loadPolicyFile(file)).roles.keys()]).toEqual(['deploy']);
  });

  it('names the file in parse issues', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, role({ max_duration: '15x' }));
    await expect(loadPolicyFile(file)).rejects.toThrow(
      new PolicyError([
        {
          file,
          line: 5,
          column: 19,
          path: 'roles.deploy.max_duration',
          message: '"15x" is not a duration: durations look like 15m, 1h30m, 90s or 2d',
        },
      ]),
    );
  });

  it('explains files it cannot read', async () => {
    expect(await failure(join(dir, 'missing.yaml'))).toBe(
      `${join(dir, 'missing.yaml')}: no such file`,
    );
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    expect(await failure(sub)).toBe(`${sub}: is a directory, not a policy file`);
    const file = join(dir, 'plain.yaml');
    writeFileSync(file, role());
    expect(await failure(join(file, 'x.yaml'))).toBe(
      `${join(file, 'x.yaml')}: a part of the path is not a directory`,
    );
    const loop = join(dir, 'loop.yaml');
    symlinkSync(loop, loop);
    expect(await failure(loop)).toBe(`${loop}: too many symbolic links`);
  });

  it('refuses files that are not UTF-8 or too large', async () => {
    const latin1 = join(dir, 'latin1.yaml');
    writeFileSync(latin1, Buffer.from('roles:\n  caf\xe9: {}\n', 'latin1'));
    expect(await failure(latin1)).toBe(`${latin1}: is not UTF-8 text`);
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(1024 * 1024)}\n`);
    expect(await failure(big)).toBe(`${big}: is over 1 MiB; a policy is a few KiB`);
  });
});
