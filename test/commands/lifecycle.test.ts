import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { ExitCode, type JitError } from '../../src/cli/errors.js';
import { startFlag } from '../../src/cli/start-time.js';
import { run as approve } from '../../src/commands/approve.js';
import { run as deny } from '../../src/commands/deny.js';
import { run as extend } from '../../src/commands/extend.js';
import { run as list } from '../../src/commands/list.js';
import { run as policyCheck } from '../../src/commands/policy.js';
import { run as request } from '../../src/commands/request.js';
import { run as show } from '../../src/commands/show.js';
import { run as status } from '../../src/commands/status.js';
import { credentialKey, decodeCredential, grantEndOf } from '../../src/credentials/records.js';
import { atTerminal, stderrShows } from '../e2e/in-process.js';
import { actor, people } from '../server/helpers.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * The lifecycle from the CLI, in-process against a real broker: `jitctl extend` waiting for its
 * review and fetching the longer credential, `approve`/`deny` of an extension and of a break-glass
 * grant afterwards, `request --at/--in` and `--break-glass`, what `show`, `list` and `status`
 * say about them, and `policy check --as`.
 */

const MIN = 60_000;
const POLICY = `
roles:
  ext:
    requesters: [group:developers]
    approvers: [group:leads, group:security]
    approvals: 0
    max_duration: 1h
    extend: { max_total: 1h, approvals: 1 }
    credential: { audience: https://ext.example.com }
  sched:
    requesters: [group:developers]
    approvers: [group:leads, group:security]
    approvals: { group:leads: 1, group:security: 1 }
    max_duration: 1h
    credential: { audience: https://sched.example.com }
  bg:
    requesters: [group:developers]
    approvers: [group:leads]
    max_duration: 1h
    break_glass: { review_within: 24h, max_per_week: 3 }
    credential: { audience: https://bg.example.com }
`;

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ policy: POLICY });
});
afterAll(async () => broker?.close());

const get = async (id: string) =>
  (await actor(broker, people.lee).get<AccessRequest>(`/v1/requests/${id}`)).body;

describe('jitctl extend', () => {
  it('waits for the review, then keeps a credential for the new end', async () => {
    const alice = await atTerminal(broker, people.alice, { tty: false });
    expect(await request({ role: 'ext', for: '10m' }, alice.ctx)).toBe(0);
    const store = await alice.store();
    const before = decodeCredential(await store.get(credentialKey(broker.url, 'ext')))!;
    const waiting = extend({ target: 'ext', for: '30m', reason: 'long migration' }, alice.ctx);
    await stderrShows(alice.io, /waiting for approval of the extension of req_\w+ \(\+30m; 0 of 1/);

    const lee = await atTerminal(broker, people.lee);
    lee.answers.push(true);
    expect(await approve({ id: before.requestId, comment: 'ok' }, lee.ctx)).toBe(0);
    expect(lee.asked).toEqual([
      `Approve extending ${before.requestId} by 30m (Alice (alice-sub), ext)?`,
    ]);
    expect(lee.io.stderrText()).toContain(
      'Extension    #1 +30m pending (0 of 1 approvals): "long migration"',
    );
    expect(lee.io.stderrText()).toMatch(
      /✔ extended req_\w+ by 30m: Alice \(alice-sub\) has ext until/,
    );

    expect(await waiting).toBe(0);
    expect(alice.io.stderrText()).toMatch(
      /✔ extended req_\w+ by 30m \(approved by Lee\): valid until/,
    );
    const after = decodeCredential(await store.get(credentialKey(broker.url, 'ext')))!;
    // The grant's end moved; the kept credential is a fresh one (the role's credential.ttl) inside it.
    expect(grantEndOf(after) - grantEndOf(before)).toBe(30 * MIN);
    expect(Date.parse(after.expiresAt)).toBeLessThanOrEqual(grantEndOf(after));
    alice.home.cleanup();
    lee.home.cleanup();
  });

  it('a denied extension exits 3 and says the grant keeps its end; --no-wait returns at once', async () => {
    const alice = await atTerminal(broker, people.alice, { tty: false });
    expect(await request({ role: 'ext', for: '10m' }, alice.ctx)).toBe(0);
    const id = decodeCredential(
      await (await alice.store()).get(credentialKey(broker.url, 'ext')),
    )!.requestId;
    expect(await extend({ target: id, for: '5m', wait: false }, alice.ctx)).toBe(0);
    expect(alice.io.stdoutText().trim().split('\n').at(-1)).toBe(id);
    const waiting = extend({ target: id, for: '5m' }, alice.ctx).catch((e: unknown) => e);
    await stderrShows(alice.io, /waiting for approval of the extension/);
    const lee = await atTerminal(broker, people.lee, { tty: false });
    expect(await deny({ id, yes: true, comment: 'wrap up' }, lee.ctx)).toBe(0);
    const err = (await waiting) as JitError;
    expect(err.exitCode).toBe(ExitCode.Denied);
    expect(err.message).toMatch(/the extension of req_\w+ was denied by Lee \("wrap up"\)/);
    expect(err.hint).toMatch(/it stays valid until \d\d:\d\d/);
    alice.home.cleanup();
    lee.home.cleanup();
  });

  it('refuses without --for, or with a bad one, before anything is sent', async () => {
    const alice = await atTerminal(broker, people.alice, { tty: false });
    const missing = (await extend({ target: 'ext' }, alice.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(missing.exitCode).toBe(ExitCode.Usage);
    expect(missing.message).toMatch(/--for is required/);
    const bad = (await extend({ target: 'ext', for: '5x' }, alice.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(bad.exitCode).toBe(ExitCode.Usage);
    const none = (await extend({ target: 'sched', for: '5m' }, alice.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(none.exitCode).toBe(ExitCode.Denied);
    expect(none.message).toMatch(/no approved grant of sched/);
    alice.home.cleanup();
  });
});

describe('jitctl request --at / --in', () => {
  it('multi-party: the waiting line says what is missing per group; approved, it starts later', async () => {
    const alice = await atTerminal(broker, people.alice, { tty: false });
    const waiting = request({ role: 'sched', in: '30m', for: '15m' }, alice.ctx);
    const m = await stderrShows(
      alice.io,
      /waiting for approval of (req_\w+) \(still needs 1 from group:leads and 1 from group:security; starts \d\d:\d\d \(in 30m\)/,
    );
    const id = m[1]!;
    const lee = await atTerminal(broker, people.lee, { tty: false });
    expect(await approve({ id, yes: true }, lee.ctx)).toBe(0);
    expect(lee.io.stderrText()).toContain(
      `recorded your approval of ${id}: still needs 1 from group:security (group:leads ✔)`,
    );
    await stderrShows(alice.io, /still needs 1 from group:security \(group:leads ✔\)/);
    const sec = await atTerminal(
      broker,
      { sub: 'sec-sub', name: 'Sec', groups: ['security'] },
      { tty: false },
    );
    expect(await approve({ id, yes: true }, sec.ctx)).toBe(0);
    expect(await waiting).toBe(0);
    expect(alice.io.stderrText()).toMatch(
      /approved by Lee, Sec · starts \d\d:\d\d \(in 30m\), valid until/,
    );
    expect(alice.io.stderrText()).toContain(`jitctl wait ${id}`);
    expect((await get(id)).state).toBe('scheduled');

    const mark = alice.io.stdoutText().length;
    expect(await status({ json: true }, alice.ctx)).toBe(0);
    const doc = JSON.parse(alice.io.stdoutText().slice(mark)) as {
      scheduled: { role: string; request_id: string }[];
    };
    expect(doc.scheduled).toEqual([expect.objectContaining({ role: 'sched', request_id: id })]);
    const shown = await atTerminal(broker, people.lee, { tty: false });
    expect(await show({ id }, shown.ctx)).toBe(0);
    expect(shown.io.stdoutText()).toMatch(/State +scheduled: starts \d\d:\d\d \(in 30m\)/);
    expect(shown.io.stdoutText()).toContain(
      'Approvals    1 of 1 from group:leads, 1 of 1 from group:security',
    );
    for (const t of [alice, lee, sec, shown]) t.home.cleanup();
  });

  it('bad --at values are usage errors that say how to fix them', () => {
    const now = new Date(2025, 0, 15, 15, 5).getTime();
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as JitError;
      }
      throw new Error('no error');
    };
    const past = err(() => startFlag('14:00', undefined, now));
    expect(past.exitCode).toBe(ExitCode.Usage);
    expect(past.message).toBe('`--at 14:00` is in the past: it is 15:05 now');
    expect(past.hint).toMatch(/^for tomorrow, write --at 2025-01-16T14:00:00[+-]\d\d:\d\d$/);
    expect(err(() => startFlag('tomorrow', undefined, now)).message).toMatch(/is not a time/);
    expect(err(() => startFlag('25:00', undefined, now)).message).toMatch(/is not a time/);
    expect(err(() => startFlag(undefined, '8d', now)).message).toMatch(/more than 7d ahead/);
    expect(err(() => startFlag('16:00', '1h', now)).message).toMatch(/both say when/);
    expect(err(() => startFlag(undefined, 'soon', now)).message).toMatch(/durations look like/);
    expect(startFlag('16:00', undefined, now)).toBe(new Date(2025, 0, 15, 16, 0).getTime());
    expect(startFlag('2025-01-15T16:00:00Z', undefined, now)).toBe(Date.UTC(2025, 0, 15, 16));
    expect(startFlag(undefined, '2h', now)).toBe(now + 120 * MIN);
  });
});

describe('jitctl request --break-glass', () => {
  it('approved at once and reviewed afterwards: approve acknowledges, deny flags', async () => {
    const alice = await atTerminal(broker, people.alice, { tty: false });
    const noReason = (await request({ role: 'bg', breakGlass: true }, alice.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(noReason.exitCode).toBe(ExitCode.Usage);
    expect(noReason.message).toMatch(/--break-glass needs --reason/);
    expect(await request({ role: 'bg', breakGlass: true, reason: 'db on fire' }, alice.ctx)).toBe(
      0,
    );
    expect(alice.io.stderrText()).toMatch(
      /break-glass: req_\w+ is approved now and will be reviewed/,
    );
    const id = decodeCredential(
      await (await alice.store()).get(credentialKey(broker.url, 'bg')),
    )!.requestId;

    const lee = await atTerminal(broker, people.lee, { tty: false });
    expect(await list({ breakGlass: 'unreviewed' }, lee.ctx)).toBe(0);
    expect(lee.io.stdoutText()).toMatch(new RegExp(`${id} +bg +Alice +approved \\(break-glass\\)`));
    const noComment = (await deny({ id, yes: true }, lee.ctx).catch((e: unknown) => e)) as JitError;
    expect(noComment.exitCode).toBe(ExitCode.Usage);
    expect(noComment.message).toMatch(/flagging needs --comment/);
    expect(await deny({ id, yes: true, comment: 'no incident open' }, lee.ctx)).toBe(0);
    expect(lee.io.stderrText()).toMatch(/flagged req_\w+; .*end it with `jitctl revoke req_\w+`/);
    expect((await get(id)).break_glass).toMatchObject({
      verdict: 'flagged',
      comment: 'no incident open',
    });

    expect(await request({ role: 'bg', breakGlass: true, reason: 'again' }, alice.ctx)).toBe(0);
    const second = decodeCredential(
      await (await alice.store()).get(credentialKey(broker.url, 'bg')),
    )!.requestId;
    const lin = await atTerminal(broker, people.lin);
    lin.answers.push(true);
    expect(await approve({ id: second }, lin.ctx)).toBe(0);
    expect(lin.asked).toEqual([
      `Acknowledge Alice (alice-sub)'s break-glass use of bg (${second})?`,
    ]);
    expect((await get(second)).break_glass).toMatchObject({ verdict: 'acknowledged' });
    for (const t of [alice, lee, lin]) t.home.cleanup();
  });
});

describe('jitctl policy check --as', () => {
  it('explains which rule decides, for a person, a time and a ticket', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'jitctl-policy-'));
    writeFileSync(join(dir, 'oncall.txt'), 'bob@example.com\n');
    writeFileSync(
      join(dir, 'policy.yaml'),
      `on_call: { source: oncall.txt }
roles:
  prod:
    requesters: [group:developers]
    approvers: [group:leads]
    max_duration: 2h
    rules:
      - { name: night, decision: deny, outside: { hours: 07:00-22:00, timezone: UTC } }
      - { name: incident, decision: approve, ticket: "INC-[0-9]+", max_duration: 30m }
      - { name: primary, decision: approve, on_call: true }
    credential: { audience: https://k8s.example.com }
`,
    );
    const file = join(dir, 'policy.yaml');
    const t = await atTerminal(broker, people.alice, { tty: false });
    const as = (extra: object) =>
      policyCheck(
        { file, as: 'user:alice@example.com', group: ['developers'], role: 'prod', ...extra },
        t.ctx,
      );
    expect(await as({ at: '2025-01-15T23:00:00Z' })).toBe(0);
    expect(t.io.stdoutText()).toContain(
      'rule night (deny): it starts outside every day 07:00-22:00 UTC ✔  → denies',
    );
    expect(t.io.stdoutText()).toContain('decided by rule night: deny');
    const mark = t.io.stdoutText().length;
    expect(await as({ at: '2025-01-15T12:00:00Z', ticket: 'INC-9', json: true })).toBe(0);
    const doc = JSON.parse(t.io.stdoutText().slice(mark)) as {
      explanation: { decision: string; rule: string };
    };
    expect(doc.explanation).toMatchObject({ decision: 'approve', rule: 'incident' });
    const bob = await policyCheck(
      {
        file,
        as: 'user:bob@example.com',
        group: ['developers'],
        role: 'prod',
        at: '2025-01-15T12:00:00Z',
        json: true,
      },
      t.ctx,
    );
    expect(bob).toBe(0);
    expect(t.io.stdoutText()).toContain('"rule": "primary"');
    expect(await as({ at: '2025-01-15T12:00:00Z', group: [] })).toBe(0);
    expect(t.io.stdoutText()).toContain('refused: not a requester of prod');
    const noRole = (await policyCheck({ file, as: 'user:alice@example.com' }, t.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(noRole.exitCode).toBe(ExitCode.Usage);
    expect(noRole.message).toMatch(/--as needs --role/);
    rmSync(dir, { recursive: true, force: true });
    t.home.cleanup();
  });
});
