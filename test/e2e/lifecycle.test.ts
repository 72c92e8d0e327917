import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { grantEndOf } from '../../src/credentials/records.js';
import { type DevBroker, signIn, startDevBroker, type User, user } from './support.js';

/**
 * The lifecycle with real processes: `jitctl server --dev`, the built binary for every command,
 * alice asking, lee reviewing. Extending a grant, a scheduled start, break-glass reviewed
 * afterwards, and the per-person cap on pending requests, as a person at a shell meets them.
 */

vi.setConfig({ testTimeout: 120_000 });

const POLICY = `
roles:
  deploy:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    max_duration: 1h
    max_pending: 2
    extend: { max_total: 1h }
    break_glass: { review_within: 24h, max_per_week: 1 }
    credential:
      audience: https://k8s.example.com
      env: { KUBE_TOKEN: "{{token}}" }
`;

let broker: DevBroker;
let alice: User;
let lee: User;

beforeAll(async () => {
  broker = await startDevBroker({ policy: POLICY });
  alice = user('alice', broker);
  lee = user('lee', broker);
  await Promise.all([signIn(alice, broker, true), signIn(lee, broker, true)]);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  for (const u of [alice, lee]) u?.home.cleanup();
});

async function show(id: string): Promise<AccessRequest> {
  const r = await lee.run(['show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as AccessRequest;
}

describe('jitctl with the lifecycle', () => {
  it('extend: alice asks, lee approves the extension, her credential gets the new end', async () => {
    const req = await alice.run(['request', 'deploy', '--for', '10m', '--no-wait']);
    expect(req.code, req.stderr).toBe(0);
    const id = req.stdout.trim();
    expect((await lee.run(['approve', id, '--yes'])).code).toBe(0);
    const wait = await alice.run(['wait', id]);
    expect(wait.code, wait.stderr).toBe(0);
    const before = (await alice.credential('deploy'))!;

    const extending = alice.spawn(['extend', 'deploy', '--for', '20m', '--reason', 'slow rollout']);
    await extending.waitForOutput(/waiting for approval of the extension/, 30_000);
    const approved = await lee.run(['approve', id, '--yes', '--comment', 'fine']);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stderr).toContain(
      'Extension    #1 +20m pending (0 of 1 approvals): "slow rollout"',
    );
    const done = await extending.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/✔ extended req_\w+ by 20m \(approved by Lee Lead\): valid until/);
    const after = (await alice.credential('deploy'))!;
    // The grant's end moved; the kept credential is a fresh one (the role's credential.ttl) inside it.
    expect(grantEndOf(after) - grantEndOf(before)).toBe(20 * 60_000);
    expect(Date.parse(after.expiresAt)).toBeLessThanOrEqual(grantEndOf(after));

    const over = await alice.run(['extend', id, '--for', '50m']);
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/allows at most 1h in all/);
    expect(over.stderr).toContain('ask for 40m or less');
  });

  it('--in: approvable now, scheduled; list and show say when it starts', async () => {
    const r = await alice.run(['request', 'deploy', '--in', '2h', '--for', '15m', '--no-wait']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(r.stderr).toMatch(/pending, .*starts \d\d:\d\d \(in 2h\)/);
    expect((await lee.run(['approve', id, '--yes'])).code).toBe(0);
    expect((await show(id)).state).toBe('scheduled');
    const listed = await alice.run(['list', '--mine', '--state', 'scheduled']);
    expect(listed.stdout).toMatch(
      new RegExp(`${id} +deploy +Alice Developer +scheduled \\d\\d:\\d\\d`),
    );
    const bad = await alice.run(['request', 'deploy', '--at', 'noon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/`--at noon` is not a time/);
    await alice.run(['cancel', id]);
  });

  it('break-glass: at once, once a week; lee acknowledges it with approve', async () => {
    const r = await alice.run(['request', 'deploy', '--break-glass', '--reason', 'prod is down']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/break-glass: req_\w+ is approved now and will be reviewed/);
    const id = (await alice.credential('deploy'))!.requestId;
    const again = await alice.run(['request', 'deploy', '--break-glass', '--reason', 'still down']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /used break-glass for deploy 1 times in the last 7 days; the limit is 1/,
    );
    const unreviewed = await lee.run(['list', '--break-glass', 'unreviewed']);
    expect(unreviewed.stdout).toContain(id);
    const ack = await lee.run(['approve', id, '--yes']);
    expect(ack.code, ack.stderr).toBe(0);
    expect(ack.stderr).toContain(`acknowledged the break-glass use ${id}`);
    expect((await show(id)).break_glass).toMatchObject({ verdict: 'acknowledged' });
  });

  it('the pending cap: a third pending request is refused with when to try again', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await alice.run(['request', 'deploy', '--no-wait']);
      expect(r.code, r.stderr).toBe(0);
      ids.push(r.stdout.trim());
    }
    const third = await alice.run(['request', 'deploy', '--no-wait']);
    expect(third.code).toBe(1);
    expect(third.stderr).toMatch(
      /you have 2 pending requests for deploy; at most 2 may wait at once/,
    );
    for (const id of ids) await alice.run(['cancel', id]);
  });
});
