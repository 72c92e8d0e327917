import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { isInheritedIgnored } from '../exec/inherited-signals.js';
import { InterruptedError } from './errors.js';
import { type IO, isCI, systemIO } from './io.js';
import { type Prompter, terminalPrompter } from './prompt.js';

/**
 * Everything a command depends on, passed explicitly (cloudflare/workers-sdk's context): IO,
 * environment, clock, paths, prompts, the browser. auth/, credentials/ and client/ read no
 * process.* state and print nothing; they get what they need from here. Tests build a Context
 * with fakes ({@link createContext} with overrides) instead of mocking modules.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export interface Clock {
  now(): number;
  /** Resolves after `ms`; rejects with InterruptedError when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface Paths {
  /** $XDG_CONFIG_HOME/jitctl: config.json */
  configDir: string;
  /** $XDG_DATA_HOME/jitctl: the encrypted file store */
  dataDir: string;
  /** $XDG_STATE_HOME/jitctl: locks */
  stateDir: string;
}

export interface Context {
  readonly io: IO;
  readonly env: Env;
  readonly clock: Clock;
  readonly paths: Paths;
  /** CI=true: nothing interactive, plain lines, exit codes for outcomes. */
  readonly ci: boolean;
  /** JITCTL_DEBUG=1: stacks for unexpected errors, debug lines on stderr. */
  readonly debug: boolean;
  /** The words after the first `--` on the command line (the command of `exec`). */
  readonly passthrough: readonly string[] | undefined;
  /** How to run this jitctl again (for kubeconfig exec stanzas and the tour). */
  readonly self: { command: string; args: string[] };
  readonly prompter: Prompter;
  /**
   * An AbortSignal that fires on SIGINT or SIGTERM. Handlers are installed on first call only, so
   * commands that manage signals themselves (exec) are not affected.
   */
  interruptSignal(): AbortSignal;
  /**
   * Opens a URL in the user's browser: $BROWSER if set (run without a shell, URL as the last
   * argument), else the platform opener. Returns false when there is no browser to open (no
   * display, SSH, CI) so the caller prints the URL instead of failing (kubelogin).
   */
  openBrowser(url: string): Promise<boolean>;
}

export function xdgPaths(env: Env): Paths {
  const home = env.HOME || homedir();
  return {
    configDir: join(env.XDG_CONFIG_HOME || join(home, '.config'), 'jitctl'),
    dataDir: join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'jitctl'),
    stateDir: join(env.XDG_STATE_HOME || join(home, '.local', 'state'), 'jitctl'),
  };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  async sleep(ms, signal) {
    try {
      await delay(ms, undefined, signal ? { signal } : undefined);
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw new InterruptedError();
      throw err;
    }
  },
};

/** Whether a browser can be shown here: not over SSH, not in CI, and a display on Linux. */
export function hasBrowser(env: Env, platform: NodeJS.Platform = process.platform): boolean {
  if (env.BROWSER) return env.BROWSER !== 'none';
  if (isCI(env) || env.SSH_CONNECTION || env.SSH_TTY) return false;
  if (platform === 'linux' || platform === 'freebsd' || platform === 'openbsd') {
    return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
  }
  return true;
}

async function openWithBrowser(url: string, env: Env): Promise<boolean> {
  if (!hasBrowser(env)) return false;
  if (env.BROWSER) {
    const { spawn } = await import('node:child_process');
    const [cmd, ...args] = env.BROWSER.split(' ').filter(Boolean);
    if (!cmd) return false;
    return new Promise((resolve) => {
      const child = spawn(cmd, [...args, url], { stdio: 'ignore', detached: true });
      child.once('error', () => resolve(false));
      child.once('spawn', () => {
        child.unref();
        resolve(true);
      });
    });
  }
  try {
    const { default: open } = await import('open');
    const child = await open(url, { wait: false });
    child.once('error', () => {});
    child.unref();
    return true;
  } catch {
    return false;
  }
}

export interface ContextOverrides {
  io?: IO;
  env?: Env;
  clock?: Clock;
  paths?: Paths;
  passthrough?: readonly string[];
  prompter?: Prompter;
  openBrowser?: (url: string) => Promise<boolean>;
  self?: { command: string; args: string[] };
}

export function createContext(overrides: ContextOverrides = {}): Context {
  const env = overrides.env ?? process.env;
  const io = overrides.io ?? systemIO(env);
  let controller: AbortController | undefined;
  const interruptSignal = () => {
    if (!controller) {
      const c = new AbortController();
      controller = c;
      const onSignal = (sig: NodeJS.Signals) =>
        c.abort(new InterruptedError(`interrupted (${sig})`));
      // A signal ignored when jitctl started (nohup, `trap '' INT`) interrupts nothing.
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        if (!isInheritedIgnored(env, sig)) process.once(sig, onSignal);
      }
    }
    return controller.signal;
  };
  return {
    io,
    env,
    clock: overrides.clock ?? systemClock,
    paths: overrides.paths ?? xdgPaths(env),
    ci: isCI(env),
    debug: env.JITCTL_DEBUG === '1',
    passthrough: overrides.passthrough,
    self: overrides.self ?? { command: process.execPath, args: [process.argv[1] ?? 'jitctl'] },
    prompter: overrides.prompter ?? terminalPrompter(io),
    interruptSignal,
    openBrowser: overrides.openBrowser ?? ((url) => openWithBrowser(url, env)),
  };
}
