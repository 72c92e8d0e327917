import { readFile, stat } from 'node:fs/promises';
import { type ParsePolicyOptions, parsePolicy } from './parse.js';
import { type Policy, PolicyError } from './types.js';
import { MAX_POLICY_BYTES } from './yaml-tree.js';

/**
 * Reads and parses a policy file. Every failure, reading included, is a PolicyError naming the
 * file, so the broker's start-up and `jitctl policy check` report it the same way.
 */
export async function loadPolicyFile(
  path: string,
  options: ParsePolicyOptions = {},
): Promise<Policy> {
  return parsePolicy(await readPolicyText(path), path, options);
}

/** The file's text, or a PolicyError saying why it cannot be read. */
export async function readPolicyText(path: string): Promise<string> {
  const fail = (message: string): never => {
    throw new PolicyError([{ file: path, line: null, column: null, path: '', message }]);
  };
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (info.isDirectory()) fail('is a directory, not a policy file');
    if (!info.isFile()) fail('is not a regular file');
    if (info.size > MAX_POLICY_BYTES) {
      fail(`is over ${MAX_POLICY_BYTES / 1024 / 1024} MiB; a policy is a few KiB`);
    }
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    return fail(readProblem(err));
  }
  return decodePolicyBytes(bytes, path);
}

/** UTF-8 only (YAML 1.2 also allows UTF-16, which no editor writes by accident). */
export function decodePolicyBytes(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PolicyError([
      { file, line: null, column: null, path: '', message: 'is not UTF-8 text' },
    ]);
  }
}

function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a policy file';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return `cannot be read: ${(err as Error)?.message ?? String(err)}`;
  }
}
