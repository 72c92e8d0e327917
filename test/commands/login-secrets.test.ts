import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { decodeSession, sessionKey } from '../../src/credentials/records.js';
import { DEV_USERS } from '../../src/server/dev/index.js';
import type { RunningBroker } from '../../src/server/start.js';
import { type InProcessDevBroker, startInProcessDevBroker } from '../auth/dev-broker.js';
import { type CliResult, runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';

/**
 * Secrets never leak: a whole login → status → logout against the real broker in --dev mode,
 * then every byte of the CLI's stdout and stderr, of the broker's log, and of every file under
 * the person's home except the credential store's own (encrypted) files is searched for the
 * session's tokens. None may appear, not even a JWT's signature on its own.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
let broker: RunningBroker;
let dev: InProcessDevBroker;
let home: TestHome;

beforeAll(async () => {
  dev = await startInProcessDevBroker();
  broker = dev.broker;
  home = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
});
afterAll(async () => {
  await dev?.close();
  home?.cleanup();
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

describe('no token in any output or file', () => {
  it('login → status → logout', async () => {
    const outputs: CliResult[] = [];
    const cli = spawnCli(['login', '--server', broker.url], { env: home.env });
    await cli.waitForOutput(/user_code=/);
    await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, alice, { mfa: true });
    outputs.push(await cli.done);
    expect(outputs[0]!.code).toBe(0);

    const store = await openStore(createContext({ io: testIO(), env: { ...home.env } }), 'file');
    const session = decodeSession(await store.get(sessionKey(broker.url)))!;
    const secrets = [session.bearer.reveal(), session.refreshToken!.reveal()];
    const signature = session.bearer.reveal().split('.')[2]!;
    expect(signature.length).toBeGreaterThan(20);
    secrets.push(signature);

    // Debug output too: it is what people paste into bug reports.
    for (const args of [['status'], ['status', '--json'], ['logout']]) {
      outputs.push(await runCli(args, { env: { ...home.env, JITCTL_DEBUG: '1' } }));
    }
    expect(outputs.map((o) => o.code)).toEqual([0, 0, 0, 0]);
    expect(outputs[3]!.stderr).toContain('Signed out of');

    const haystacks: Array<[string, string]> = [
      ...outputs.flatMap(
        (o, i): Array<[string, string]> => [
          [`run ${i} stdout`, o.stdout],
          [`run ${i} stderr`, o.stderr],
        ],
      ),
      ['broker log', dev.log()],
    ];
    const storeDir = join(home.env.XDG_DATA_HOME!, 'jitctl', 'store');
    const files = filesUnder(home.dir).filter((f) => !f.startsWith(`${storeDir}/`));
    expect(files.map((f) => relative(home.dir, f))).toContain(
      join('config', 'jitctl', 'config.json'),
    );
    for (const f of files) haystacks.push([relative(home.dir, f), readFileSync(f, 'latin1')]);
    expect(dev.log().length).toBeGreaterThan(1000);

    // The haystacks hold what was said (a control that the scan looks at real output).
    expect(
      haystacks.filter(([, text]) => text.includes('alice@example.com')).length,
    ).toBeGreaterThanOrEqual(3);
    for (const [where, text] of haystacks) {
      for (const secret of secrets) {
        expect(text.includes(secret), `a token appears in ${where}`).toBe(false);
      }
    }
    // What the store kept is encrypted, and gone after logout.
    for (const f of filesUnder(home.dir).filter((p) => p.startsWith(`${storeDir}/`))) {
      const text = readFileSync(f, 'latin1');
      for (const secret of secrets) expect(text.includes(secret)).toBe(false);
      expect(statSync(f).mode & 0o777).toBe(0o600);
    }
    expect(await store.list()).toEqual([]);
  });
});
