import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DevBroker, signIn, startDevBroker, type User, user, waitingId } from './support.js';

/**
 * A wait outlives the broker: alice waits for approval, the broker is killed (SIGKILL, a crash,
 * not a graceful stop) and started again on the same port and data directory; her command says
 * once that the broker is unreachable, keeps retrying, and completes when lee approves on the
 * restarted broker. A command that finds the broker down at its start exits 69 instead.
 */

// Real processes on a machine that may be busy: each step has its own generous wait, and a test
// of several steps gets the sum of them.
vi.setConfig({ testTimeout: 180_000 });

let broker: DevBroker;
let alice: User;
let lee: User;

beforeAll(async () => {
  broker = await startDevBroker();
  alice = user('alice', broker);
  lee = user('lee', broker);
  await Promise.all([signIn(alice, broker, true), signIn(lee, broker, true)]);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  alice?.home.cleanup();
  lee?.home.cleanup();
});

describe('broker restart during a wait', () => {
  it('the wait resumes after a crash and restart, and completes with the credential', async () => {
    const waiting = alice.spawn(['request', 'staging-admin', '--reason', 'across a restart']);
    const id = await waitingId(waiting);

    const crashed = await broker.stop('SIGKILL');
    expect(crashed.signal).toBe('SIGKILL');
    await waiting.waitForOutput('broker unreachable, retrying…', 30_000);

    // With the broker down, a command that starts now cannot do anything: exit 69.
    const down = await lee.run(['list']);
    expect(down.code).toBe(69);
    expect(down.stderr).toContain(`cannot reach the broker at ${broker.url} (ECONNREFUSED`);
    expect(down.stderr).toContain('hint: check that the broker is running');

    await broker.start();
    // Back: the waiting command's next poll reaches it; the request survived in the database.
    await waiting.waitForOutput(
      new RegExp(`broker unreachable[\\s\\S]*waiting for approval of ${id}`),
      30_000,
    );
    const approve = await lee.run(['approve', id, '--yes']);
    expect(approve.code, approve.stderr).toBe(0);

    const r = await waiting.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/✔ approved by Lee Lead · credential valid until/);
    expect(r.stderr.match(/broker unreachable, retrying…/g)).toHaveLength(1);
    expect((await alice.credential('staging-admin'))?.requestId).toBe(id);
  });

  it('a graceful restart (SIGTERM) during a wait is survived the same way', async () => {
    const waiting = alice.spawn(['wait', (await fileOne()).trim()]);
    await waiting.waitForOutput('waiting for approval of', 30_000);
    const stopped = await broker.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    await waiting.waitForOutput('broker unreachable, retrying…', 30_000);
    await broker.start();
    const id = /waiting for approval of (req_\w+)/.exec(waiting.stderr())![1]!;
    await waiting.waitForOutput(
      new RegExp(`unreachable[\\s\\S]*waiting for approval of ${id}`),
      30_000,
    );
    expect((await lee.run(['deny', id, '--yes', '--comment', 'after the restart'])).code).toBe(0);
    const r = await waiting.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('"after the restart"');
  });
});

async function fileOne(): Promise<string> {
  const r = await alice.run(['request', 'staging-admin', '--reason', 'graceful', '--no-wait']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}
