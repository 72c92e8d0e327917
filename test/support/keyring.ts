import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

/**
 * A real Secret Service for tests: a private D-Bus session bus and gnome-keyring-daemon with an
 * unlocked login keyring, in a temporary XDG_RUNTIME_DIR/XDG_DATA_HOME, nothing shared with the
 * machine's own session.
 *
 * Both daemons run in the foreground as children of the test process (not `--fork`), so that
 * stopping them reaps them and no daemon or zombie is left behind. The bus has its own config
 * with no service directories: nothing is ever auto-started on it, so "no Secret Service" and
 * "locked" stay exactly as a test arranges them (the stock session config would activate a
 * second, locked gnome-keyring on first use).
 */

const run = promisify(execFile);

export function keyringAvailable(): boolean {
  return ['/usr/bin/dbus-daemon', '/usr/bin/gnome-keyring-daemon', '/usr/bin/dbus-send'].every(
    (p) => existsSync(p),
  );
}

export interface PrivateKeyring {
  /** DBUS_SESSION_BUS_ADDRESS and the XDG directories, for the test process and spawned CLIs. */
  env: { DBUS_SESSION_BUS_ADDRESS: string; XDG_RUNTIME_DIR: string };
  /** Stops the keyring daemon (the bus stays): no Secret Service on the bus. */
  stopDaemon(): Promise<void>;
  /** Starts the daemon again; `unlock: false` leaves the existing login keyring locked. */
  startDaemon(opts?: { unlock?: boolean }): Promise<void>;
  /** SIGSTOP / SIGCONT the daemon: a Secret Service that stops answering. */
  pause(): void;
  resume(): void;
  /** Stops both daemons and removes the directories. */
  stop(): Promise<void>;
}

const PASSWORD = 'test-keyring-password';

export async function startKeyring(): Promise<PrivateKeyring> {
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-keyring-'));
  const runtime = join(dir, 'run');
  const data = join(dir, 'data');
  mkdirSync(runtime, { mode: 0o700 });
  mkdirSync(data, { mode: 0o700 });
  const config = join(dir, 'bus.conf');
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${join(dir, 'bus')}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`,
  );
  const baseEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_RUNTIME_DIR: runtime,
    XDG_DATA_HOME: data,
    XDG_CONFIG_HOME: join(dir, 'config'),
  };

  const bus = spawn('dbus-daemon', [`--config-file=${config}`, '--nofork', '--print-address=1'], {
    env: baseEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Kept for failures only (it warns about fd limits when not root-with-CAP_SYS_RESOURCE).
  let busErr = '';
  bus.stderr!.on('data', (c: Buffer) => {
    busErr += c.toString();
  });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    bus.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(line.trim());
    });
    bus.once('exit', (code) => reject(new Error(`dbus-daemon exited (${code}): ${busErr}`)));
    bus.once('error', reject);
  });
  const env = { ...baseEnv, DBUS_SESSION_BUS_ADDRESS: address };

  const hasSecretService = async (): Promise<boolean> => {
    const { stdout } = await run(
      'dbus-send',
      [
        '--session',
        '--print-reply',
        '--dest=org.freedesktop.DBus',
        '/org/freedesktop/DBus',
        'org.freedesktop.DBus.NameHasOwner',
        'string:org.freedesktop.secrets',
      ],
      { env },
    );
    return /boolean true/.test(stdout);
  };

  let daemon: ChildProcess | undefined;
  const startDaemon = async ({ unlock = true } = {}) => {
    const child = spawn(
      'gnome-keyring-daemon',
      ['--foreground', '--components=secrets', ...(unlock ? ['--unlock'] : [])],
      { env, stdio: ['pipe', 'ignore', 'ignore'] },
    );
    daemon = child;
    if (unlock) child.stdin!.end(PASSWORD);
    else child.stdin!.end();
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error('gnome-keyring-daemon exited at start');
      if (await hasSecretService()) return;
      await delay(50);
    }
    throw new Error('gnome-keyring-daemon did not register org.freedesktop.secrets');
  };

  const stopChild = async (child: ChildProcess | undefined) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };

  const stopDaemon = async () => {
    await stopChild(daemon);
    daemon = undefined;
    for (let i = 0; i < 100 && (await hasSecretService()); i++) await delay(50);
  };

  try {
    await startDaemon();
  } catch (err) {
    await stopChild(bus);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    env: { DBUS_SESSION_BUS_ADDRESS: address, XDG_RUNTIME_DIR: runtime },
    startDaemon,
    stopDaemon,
    pause: () => void daemon?.kill('SIGSTOP'),
    resume: () => void daemon?.kill('SIGCONT'),
    async stop() {
      await stopChild(daemon);
      await stopChild(bus);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
