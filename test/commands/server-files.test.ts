import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseLockedError } from '../../src/server/store/sqlite-lock.js';
import { POLICY, people } from '../server/helpers.js';
import { http, startTestBroker } from '../support/broker.js';
import { runCli, type SpawnedCli, spawnCli, testHome } from '../support/cli.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';

/**
 * The broker's files as an operator (and another local user) finds them: the SQLite database holds
 * the credential signing key, so it, its -wal and -shm are 0600 and a new data directory 0700;
 * an existing database or key file that others can read stops the broker with the chmod that
 * fixes it. One SQLite file serves one broker: a second is refused while the first runs, and a
 * first killed with SIGKILL leaves nothing that blocks the next start.
 */

let issuer: TestIssuer;
let dir: string;
let policyFile: string;
const home = testHome();
const URL_LINE = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

beforeAll(async () => {
  issuer = await startTestIssuer();
  dir = mkdtempSync(join(tmpdir(), 'jitctl-server-files-'));
  policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
});
afterAll(async () => {
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
  home.cleanup();
});

const mode = (path: string) => statSync(path).mode & 0o777;

function args(db: string, ...extra: string[]): string[] {
  return [
    'server',
    '--listen',
    '127.0.0.1:0',
    '--db',
    `sqlite:${db}`,
    '--policy',
    policyFile,
    '--oidc-issuer',
    issuer.issuer,
    '--oidc-client-id',
    issuer.clientId,
    ...extra,
  ];
}

async function started(run: SpawnedCli): Promise<string> {
  await run.waitForOutput(URL_LINE, 30_000);
  return URL_LINE.exec(run.stderr())![1]!;
}

async function stop(run: SpawnedCli, signal: NodeJS.Signals = 'SIGTERM') {
  if (run.child.exitCode === null) run.child.kill(signal);
  return run.done;
}

describe('files that hold secrets are private', () => {
  it('creates a new data directory 0700 and the database, -wal and -shm 0600 (umask 022)', async () => {
    const db = join(dir, 'fresh', 'nested', 'jitctl.db');
    const run = spawnCli(args(db), { env: home.env, cwd: dir });
    try {
      const url = await started(run);
      // A write, so the WAL holds pages of the database (and the key).
      const r = await http(url, 'POST', '/v1/requests', {
        token: await issuer.token(people.alice),
        body: { role: 'two-person' },
      });
      expect(r.status, r.text).toBe(201);
      expect(mode(join(dir, 'fresh'))).toBe(0o700);
      expect(mode(join(dir, 'fresh', 'nested'))).toBe(0o700);
      for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}.lock`]) expect(mode(f), f).toBe(0o600);
    } finally {
      expect((await stop(run)).code).toBe(0);
    }
  });

  it('--dev creates its data directory 0700 before the database goes in it', async () => {
    const data = join(dir, 'dev-data');
    const run = spawnCli(['server', '--dev', '--listen', '127.0.0.1:0', '--data-dir', data], {
      env: home.env,
      cwd: dir,
    });
    try {
      await run.waitForOutput('jitctl login --server', 60_000);
      expect(mode(data)).toBe(0o700);
      for (const f of ['jitctl.db', 'jitctl.db-wal', 'jitctl.db-shm', 'idp-keys.json'])
        expect(mode(join(data, f)), f).toBe(0o600);
    } finally {
      expect((await stop(run)).code).toBe(0);
    }
  });

  it('refuses a database other users can read, with the chmod that fixes it, and changes nothing', async () => {
    const db = join(dir, 'shared.db');
    const first = spawnCli(args(db), { env: home.env, cwd: dir });
    await started(first);
    expect((await stop(first)).code).toBe(0);
    chmodSync(db, 0o644);
    const before = readFileSync(db);

    const r = await runCli(args(db), { env: home.env, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${db} is readable or writable by other users (mode 0644)`);
    expect(r.stderr).toContain('the credential signing key');
    expect(r.stderr).toContain(`run \`chmod 600 ${db}\``);
    expect(r.stderr).not.toContain('listening on');
    expect(mode(db)).toBe(0o644);
    expect(readFileSync(db).equals(before)).toBe(true);

    // A -wal left group-readable is named too, in the same command.
    writeFileSync(`${db}-wal`, '', { mode: 0o640 });
    chmodSync(`${db}-wal`, 0o640);
    const both = await runCli(args(db), { env: home.env, cwd: dir });
    expect(both.code).toBe(1);
    expect(both.stderr).toContain(`run \`chmod 600 ${db} ${db}-wal\``);

    chmodSync(db, 0o600);
    rmSync(`${db}-wal`);
    const fixed = spawnCli(args(db), { env: home.env, cwd: dir });
    await started(fixed);
    expect((await stop(fixed)).code).toBe(0);
  });

  it('refuses a signing key file other users can read', async () => {
    const keyDir = join(dir, 'keys');
    const keyFile = join(keyDir, 'signing.jwk');
    const first = spawnCli(args(join(dir, 'k.db'), '--config', writeConfig(keyFile)), {
      env: home.env,
      cwd: dir,
    });
    await started(first);
    expect((await stop(first)).code).toBe(0);
    expect(mode(keyDir)).toBe(0o700);
    expect(mode(keyFile)).toBe(0o600);
    chmodSync(keyFile, 0o604);

    const r = await runCli(args(join(dir, 'k.db'), '--config', writeConfig(keyFile)), {
      env: home.env,
      cwd: dir,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${keyFile} is readable or writable by other users (mode 0604)`);
    expect(r.stderr).toContain('the private key that signs credentials');
    expect(r.stderr).toContain(`run \`chmod 600 ${keyFile}\``);
  });
});

function writeConfig(keyFile: string): string {
  const file = join(dir, 'key-config.yaml');
  writeFileSync(file, `signing_key: ${keyFile}\n`);
  return file;
}

describe('one SQLite file, one broker', () => {
  it('refuses a second broker on the same file, naming PostgreSQL; audit verify still reads it', async () => {
    const db = join(dir, 'one.db');
    const first = spawnCli(args(db), { env: home.env, cwd: dir });
    try {
      await started(first);
      const second = await runCli(args(db), { env: home.env, cwd: dir });
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`another jitctl server (pid ${first.child.pid} on `);
      expect(second.stderr).toContain(`is already using ${db}`);
      expect(second.stderr).toContain('SQLite serves one broker process');
      expect(second.stderr).toContain('use PostgreSQL');
      expect(second.stderr).not.toContain('listening on');

      // Reading is not serving: the operator's audit verify works beside the broker.
      const verify = await runCli(['audit', 'verify', '--db', `sqlite:${db}`], { env: home.env });
      expect(verify.code, verify.stderr).toBe(0);
    } finally {
      expect((await stop(first)).code).toBe(0);
    }
    // Stopped: the file is free again.
    const again = spawnCli(args(db), { env: home.env, cwd: dir });
    await started(again);
    expect((await stop(again)).code).toBe(0);
  });

  it('a broker killed with SIGKILL leaves no lock behind', async () => {
    const db = join(dir, 'killed.db');
    const first = spawnCli(args(db), { env: home.env, cwd: dir });
    await started(first);
    expect((await stop(first, 'SIGKILL')).signal).toBe('SIGKILL');
    expect(existsSync(`${db}.lock`)).toBe(true);
    const next = spawnCli(args(db), { env: home.env, cwd: dir });
    const url = await started(next);
    expect((await http(url, 'GET', '/readyz')).status).toBe(200);
    expect((await stop(next)).code).toBe(0);
  });

  it('two brokers in one process are kept apart too', async () => {
    const a = await startTestBroker({ policy: POLICY, issuer });
    try {
      await expect(startTestBroker({ policy: POLICY, issuer, dbUrl: a.dbUrl })).rejects.toThrow(
        DatabaseLockedError,
      );
      expect((await http(a.url, 'GET', '/readyz')).status).toBe(200);
    } finally {
      await a.close();
    }
  });
});
