import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { homeEnv } from '../../scripts/home-env.js';

/** The real binary, as users run it, built for this test run by the global setup. */
export const BIN = inject('jitctlBin');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * A private home for one simulated user: HOME and the XDG directories in a temporary directory,
 * and an environment with nothing from the developer's own session (no DISPLAY, no CI, no
 * JITCTL_*), so the CLI's config, stores and locks never touch the real ones.
 */
export interface TestHome {
  dir: string;
  env: Record<string, string>;
  cleanup(): void;
}

export function testHome(extra: Record<string, string> = {}): TestHome {
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-home-'));
  const env: Record<string, string> = {
    ...homeEnv(dir),
    NO_COLOR: '1',
    ...extra,
  };
  return { dir, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SpawnedCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout+stderr contain `text` (or rejects after `timeoutMs`). */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<CliResult>;
}

export function spawnCli(
  args: string[],
  opts: { env: Record<string, string>; input?: string; cwd?: string },
): SpawnedCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: opts.env,
    cwd: opts.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    for (const l of listeners) l();
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    for (const l of listeners) l();
  });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();
  const done = new Promise<CliResult>((resolveDone) => {
    child.on('close', (code, signal) => resolveDone({ code, signal, stdout: out, stderr: err }));
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    done,
    waitForOutput(text, timeoutMs = 15_000) {
      const seen = () =>
        typeof text === 'string' ? (out + err).includes(text) : text.test(out + err);
      if (seen()) return Promise.resolve();
      return new Promise((res, rej) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          rej(new Error(`timed out waiting for ${String(text)}; stdout:\n${out}\nstderr:\n${err}`));
        }, timeoutMs);
        const check = () => {
          if (seen()) {
            clearTimeout(timer);
            listeners.delete(check);
            res();
          }
        };
        listeners.add(check);
        void done.then(() => {
          if (!seen()) {
            clearTimeout(timer);
            listeners.delete(check);
            rej(
              new Error(
                `jitctl exited before printing ${String(text)}; stdout:\n${out}\nstderr:\n${err}`,
              ),
            );
          }
        });
      });
    },
  };
}

/** Runs `jitctl args…` to completion. */
export async function runCli(
  args: string[],
  opts: { env: Record<string, string>; input?: string; cwd?: string; timeoutMs?: number },
): Promise<CliResult> {
  const run = spawnCli(args, opts);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  try {
    return await run.done;
  } finally {
    clearTimeout(timer);
  }
}
