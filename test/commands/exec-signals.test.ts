import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileStoreEnv, homeStore, seedCredential, sh, waitFor } from '../credentials/fixtures.js';
import { BIN, spawnCli, testHome } from '../support/cli.js';

/**
 * Signals and terminals with real processes: jitctl passes each signal on exactly once, a
 * terminal's own signals (which reach the whole foreground process group) are not doubled, a
 * command under a pseudo-terminal keeps its TTY, and --kill-at-expiry ends the command.
 * The pseudo-terminal comes from util-linux `script`.
 */

const home = testHome();
const env = fileStoreEnv(home);
const CHILD = join(home.dir, 'signal-child.cjs');
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
let logCount = 0;

beforeAll(async () => {
  await seedCredential(homeStore(home), { role: 'prod-deploy' });
  // Logs every signal it gets; exits with 3 when told to (a stop file), so its own exit code
  // shows through jitctl.
  writeFileSync(
    CHILD,
    `const fs = require('node:fs');
const log = process.argv[2];
for (const s of ${JSON.stringify(SIGNALS)}) process.on(s, () => fs.appendFileSync(log, s + '\\n'));
const ppid = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[1];
fs.appendFileSync(log, 'ready ' + process.pid + ' ' + ppid + ' ' + Boolean(process.stdout.isTTY) + '\\n');
const t = setInterval(() => {
  if (fs.existsSync(log + '.stop')) { clearInterval(t); process.exitCode = 3; }
}, 20);
`,
  );
});
afterAll(() => home.cleanup());

interface ChildLog {
  path: string;
  lines(): string[];
  count(sig: string): number;
  ready(): Promise<{ pid: number; parent: number; tty: boolean }>;
  waitCount(sig: string, n: number): Promise<void>;
  stop(): void;
}

function childLog(): ChildLog {
  const path = join(home.dir, `signals-${++logCount}.log`);
  const lines = () =>
    existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  const count = (sig: string) => lines().filter((l) => l === sig).length;
  return {
    path,
    lines,
    count,
    ready: () =>
      waitFor(() => {
        const line = lines().find((l) => l.startsWith('ready '));
        if (!line) return undefined;
        const [, pid, parent, tty] = line.split(' ');
        return { pid: Number(pid), parent: Number(parent), tty: tty === 'true' };
      }, 'the child to start'),
    waitCount: async (sig, n) => {
      await waitFor(() => (count(sig) >= n ? true : undefined), `${sig} at the child`);
    },
    stop: () => writeFileSync(`${path}.stop`, ''),
  };
}

/** Runs `command` under a pseudo-terminal; `type` feeds the terminal as if from the keyboard. */
function underPty(command: string, extraEnv: Record<string, string> = {}) {
  const child: ChildProcess = spawn('script', ['-qfec', `exec ${command}`, '/dev/null'], {
    env: { ...env, ...extraEnv },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    type: (text: string) => child.stdin!.write(text),
    output: () => output,
    done: done.then((code) => {
      child.stdin!.end();
      return code;
    }),
  };
}

const gone = (pid: number) => !existsSync(`/proc/${pid}`);

/**
 * jitctl in a session of its own, without a controlling terminal: when the tests themselves run
 * in a terminal's foreground, a plain child would share it, and jitctl would rightly leave
 * SIGINT/SIGQUIT/SIGWINCH to the terminal.
 */
function withoutTerminal(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

describe('jitctl exec: signals without a terminal', () => {
  it('passes each of the seven signals on exactly once, then exits with the command’s code', async () => {
    const log = childLog();
    const run = withoutTerminal(['exec', 'prod-deploy', '--', process.execPath, CHILD, log.path]);
    const { pid, parent, tty } = await log.ready();
    expect(parent).toBe(run.child.pid);
    expect(tty).toBe(false);
    for (const sig of SIGNALS) {
      process.kill(run.child.pid!, sig as NodeJS.Signals);
      await log.waitCount(sig, 1);
    }
    log.stop();
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('');
    for (const sig of SIGNALS) expect(log.count(sig), sig).toBe(1);
    expect(gone(pid)).toBe(true);
  });

  it('a signal that kills the command is reported as 128+n', async () => {
    const run = spawnCli(['exec', 'prod-deploy', '--', 'sleep', '60'], { env });
    // sleep has no handlers: the forwarded SIGTERM ends it.
    await waitFor(
      () =>
        readFileSync(`/proc/${run.child.pid}/task/${run.child.pid}/children`, 'utf8').trim() ||
        undefined,
      'sleep to start',
    );
    process.kill(run.child.pid!, 'SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(143);
    expect(r.signal).toBeNull();
  });
});

describe('jitctl exec: under a pseudo-terminal', () => {
  it('the command sees a TTY on stdin, stdout and stderr', async () => {
    const pty = underPty(
      `${sh(process.execPath, BIN, 'exec', 'prod-deploy', '--', 'sh', '-c')} 'test -t 0 && test -t 1 && test -t 2 && echo TTY-OK'`,
    );
    expect(await pty.done).toBe(0);
    expect(pty.output()).toContain('TTY-OK');
  });

  it('Ctrl-C, Ctrl-\\ and a window resize reach the command once; kill(2) to jitctl is passed on', async () => {
    const log = childLog();
    const pty = underPty(
      sh(process.execPath, BIN, 'exec', 'prod-deploy', '--', process.execPath, CHILD, log.path),
    );
    const { pid, parent, tty } = await log.ready();
    expect(tty).toBe(true);
    pty.type('\x03'); // the terminal sends SIGINT to the whole foreground process group
    await log.waitCount('SIGINT', 1);
    pty.type('\x1c'); // SIGQUIT likewise
    await log.waitCount('SIGQUIT', 1);
    const terminal = readlinkSync(`/proc/${pid}/fd/0`);
    // One setting per call: stty sets each one with its own ioctl, and each change is a SIGWINCH.
    execFileSync('stty', ['-F', terminal, 'cols', '97']); // SIGWINCH to the foreground group
    await log.waitCount('SIGWINCH', 1);
    process.kill(parent, 'SIGUSR1'); // sent to jitctl alone: passed on
    await log.waitCount('SIGUSR1', 1);
    process.kill(parent, 'SIGTERM');
    await log.waitCount('SIGTERM', 1);
    log.stop();
    expect(await pty.done).toBe(3);
    for (const sig of ['SIGINT', 'SIGQUIT', 'SIGWINCH', 'SIGUSR1', 'SIGTERM']) {
      expect(log.count(sig), sig).toBe(1);
    }
    expect(gone(pid)).toBe(true);
  });

  it('Ctrl-C ends a command that does not catch it: exit 130, and jitctl outlives it', async () => {
    const marker = join(home.dir, 'sleeper.pid');
    const pty = underPty(
      sh(
        process.execPath,
        BIN,
        'exec',
        'prod-deploy',
        '--',
        'sh',
        '-c',
        `echo $$ > ${marker}; exec sleep 60`,
      ),
    );
    const pid = await waitFor(() => {
      const text = existsSync(marker) ? readFileSync(marker, 'utf8') : '';
      return text.endsWith('\n') ? Number(text) : undefined;
    }, 'sleep to start');
    pty.type('\x03');
    // script -e exits with jitctl's own code: jitctl saw its command die of SIGINT.
    expect(await pty.done).toBe(130);
    expect(gone(pid)).toBe(true);
  });
});

describe('jitctl exec --kill-at-expiry', () => {
  it('warns, sends SIGTERM at expiry, and SIGKILL after the grace period to a command that ignores it', async () => {
    const h = testHome();
    try {
      const store = homeStore(h);
      // Long enough for jitctl to start on a busy machine, short enough to wait for.
      await seedCredential(store, { role: 'brief', validMs: 8_000 });
      const hEnv = fileStoreEnv(h);
      const polite = spawnCli(['exec', 'brief', '--kill-at-expiry', '--', 'sleep', '120'], {
        env: hEnv,
      });
      const stubborn = spawnCli(
        [
          'exec',
          'brief',
          '--kill-at-expiry',
          '--',
          'sh',
          '-c',
          'trap "" TERM; while :; do sleep 0.2; done',
        ],
        { env: hEnv },
      );
      const [p, s] = await Promise.all([polite.done, stubborn.done]);
      expect(p.code).toBe(143);
      expect(p.stderr).toMatch(
        /^warning: the credential for brief expires in \d+s \(\d\d:\d\d\); the command will get SIGTERM then\n/,
      );
      expect(p.stderr).toContain(
        'jitctl: the credential for brief expired; sending SIGTERM to the command\n',
      );
      expect(p.stderr).not.toContain('SIGKILL');
      expect(s.code).toBe(137);
      expect(s.stderr).toContain('sending SIGTERM to the command\n');
      expect(s.stderr).toContain(
        'jitctl: the command is still running 10 s after SIGTERM; sending SIGKILL\n',
      );
    } finally {
      h.cleanup();
    }
  }, 60_000);
});
