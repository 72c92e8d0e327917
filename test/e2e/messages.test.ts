import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  atPty,
  type DevBroker,
  SCRIPT,
  signIn,
  startDevBroker,
  type User,
  user,
} from './support.js';

/**
 * What a newcomer reads, tried the way they would meet it: Ctrl-C at a question, a duration over
 * the maximum, the hint when there is no credential, an outcome said once, a wait on a request
 * that is already decided, a request approved at once, a session from a broker that was reset,
 * and the first request right after `jitctl login`. Real broker, real binary, a real terminal
 * (util-linux `script`) where a question is asked.
 */

vi.setConfig({ testTimeout: 120_000 });

let broker: DevBroker;
let alice: User;
let bob: User;
let lee: User;

beforeAll(async () => {
  if (!existsSync(SCRIPT)) throw new Error('these tests need `script` (apt-get install bsdutils)');
  broker = await startDevBroker();
  alice = user('alice', broker);
  bob = user('bob', broker);
  lee = user('lee', broker);
  await Promise.all([signIn(alice, broker, true), signIn(lee, broker, true)]);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  for (const u of [alice, bob, lee]) u?.home.cleanup();
});

const plain = (s: string) =>
  s
    .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\u001b\][^\u0007]*\u0007/g, '')
    .replace(/\r/g, '');
const count = (text: string, part: string) => text.split(part).length - 1;

async function filed(u: User, role: string): Promise<string> {
  const r = await u.run(['request', role, '--reason', 'for the messages tests', '--no-wait']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

async function stateOf(id: string): Promise<string> {
  const r = await alice.run(['show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { state: string }).state;
}

describe('Ctrl-C at a question is an interrupt, not a bug', () => {
  it("at approve's confirmation: exit 130, nothing was sent, the request stays pending", async () => {
    const id = await filed(alice, 'staging-admin');
    const t = atPty(lee.env, ['approve', id]);
    await t.until(/Approve req_\w+: .*\?/);
    t.type('\u0003');
    expect(await t.done).toBe(130);
    const screen = plain(t.screen());
    expect(screen).toContain('error: interrupted; nothing was sent');
    expect(screen).not.toContain('looks like a bug');
    expect(await stateOf(id)).toBe('pending');
  });

  it('at the reason prompt: exit 130, nothing was filed, and the flag that avoids the question', async () => {
    const before = JSON.parse((await alice.run(['list', '--mine', '--json'])).stdout).length;
    const t = atPty(alice.env, ['request', 'staging-admin']);
    await t.until(/Reason \(shown to the reviewers\)/);
    t.type('\u0003');
    expect(await t.done).toBe(130);
    const screen = plain(t.screen());
    expect(screen).toContain('error: interrupted; nothing was filed');
    expect(screen).toContain(
      'hint: give the reason as a flag: jitctl request staging-admin --reason',
    );
    expect(screen).not.toContain('looks like a bug');
    expect(JSON.parse((await alice.run(['list', '--mine', '--json'])).stdout)).toHaveLength(before);
  });
});

describe('messages in the words the person used', () => {
  it('--for over the maximum names the flag, the value typed and the role’s maximum', async () => {
    const r = await alice.run(['request', 'staging-admin', '--for', '100h', '--reason', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: `--for 100h` is longer than the maximum of 4h for staging-admin\n' +
        'hint: ask for 4h or less, e.g. jitctl request staging-admin --for 4h\n',
    );
    expect(r.stderr).not.toContain('duration');
  });

  it("no credential: the hint takes the role's own duration, and --reason only when it needs one", async () => {
    const db = await alice.run(['exec', 'db-read', '--', 'true']);
    expect(db.code).toBe(3);
    expect(db.stderr).toContain(
      'hint: request one: jitctl request db-read --for 30m   (at most 2h)\n',
    );
    const staging = await alice.run(['credential', 'staging-admin', '--kube']);
    expect(staging.code).toBe(3);
    expect(staging.stderr).toContain(
      'hint: request one: jitctl request staging-admin --for 1h --reason "…"   (at most 4h)\n',
    );
    // Without the roles remembered at login, the broker is asked (briefly, without prompting).
    rmSync(join(alice.home.env.XDG_STATE_HOME!, 'jitctl', 'cache'), {
      recursive: true,
      force: true,
    });
    const again = await alice.run(['exec', 'db-read', '--', 'true']);
    expect(again.stderr).toContain('jitctl request db-read --for 30m   (at most 2h)');
  });

  it('a denial is said once on the requester’s screen', async () => {
    const waiting = alice.spawn(['request', 'staging-admin', '--reason', 'to be denied']);
    await waiting.waitForOutput(/waiting for approval of (req_\w+)/);
    const id = /waiting for approval of (req_\w+)/.exec(waiting.stderr())![1]!;
    const deny = await lee.run(['deny', id, '--comment', 'not today', '--yes']);
    expect(deny.code, deny.stderr).toBe(0);
    const r = await waiting.done;
    expect(r.code).toBe(3);
    expect(count(r.stderr, 'was denied by')).toBe(1);
    expect(r.stderr).toContain(
      `error: ${id} (staging-admin) was denied by Lee Lead (Lee Lead: "not today")`,
    );

    // `wait` on it afterwards: no empty "()", no "waiting for approval", the outcome once.
    const w = await alice.run(['wait', id]);
    expect(w.code).toBe(3);
    expect(w.stderr).not.toContain('()');
    expect(w.stderr).not.toContain('waiting for approval');
    expect(count(w.stderr, 'was denied by')).toBe(1);
  });

  it('a request approved at once does not say it waits for approval', async () => {
    const r = await alice.run(['request', 'db-read']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('waiting for approval');
    expect(r.stderr).toMatch(/✔ approved \(no review needed\) · credential valid until \d\d:\d\d/);
  });

  it('the first request right after `jitctl login` needs no second sign-in', async () => {
    // bob skips nothing: login asks for what prod-deploy needs (mfa), once.
    await signIn(bob, broker, true);
    const r = await bob.run([
      'request',
      'prod-deploy',
      '--reason',
      'first request after login',
      '--no-wait',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/user_code=|sign in again|fresh MFA/);
    expect(r.stdout).toMatch(/^req_\w+\n$/);
  });
});

describe('after the broker is reset', () => {
  it('a stale session is called what it is, with the command that fixes it', async () => {
    const b = await startDevBroker();
    const carol = user('alice', b);
    try {
      await signIn(carol, b, true);
      expect((await carol.run(['roles'])).code).toBe(0);
      await b.stop();
      rmSync(join(b.dataDir, 'data'), { recursive: true, force: true });
      await b.start();
      const r = await carol.run(['roles']);
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(
        'error: your session is from another broker or identity provider: sign in again\n',
      );
      expect(r.stderr).toContain(`hint: run \`jitctl login --server ${b.url}\``);
      expect(r.stderr).not.toMatch(/^error: .*does not publish/m);
    } finally {
      await b.cleanup();
      carol.home.cleanup();
    }
  });
});
