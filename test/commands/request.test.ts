import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { ExitCode, type JitError } from '../../src/cli/errors.js';
import type { OutcomeJson } from '../../src/cli/request-flow.js';
import { run as request } from '../../src/commands/request.js';
import { run as wait } from '../../src/commands/wait.js';
import { credentialKey, decodeCredential } from '../../src/credentials/records.js';
import { atTerminal, stderrShows } from '../e2e/in-process.js';
import { actor, POLICY, people } from '../server/helpers.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * `jitctl request` and `jitctl wait` in-process against a real broker: what needs a terminal
 * (the reason prompt), a line per change while waiting, the JSON document of every outcome, and
 * what is refused before anything goes on the wire. The two-user stories with real processes are
 * in test/e2e/requests.test.ts.
 */

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker({ policy: POLICY });
});
afterAll(async () => {
  await broker?.close();
});

const pendingOf = async (id: string) =>
  (await actor(broker, people.lee).get<AccessRequest>(`/v1/requests/${id}`)).body;

describe('jitctl request', () => {
  it('on a terminal, asks for the reason a role requires, and files it with that reason', async () => {
    const t = await atTerminal(broker, people.alice);
    t.answers.push('hotfix INC-4211 (typed)');
    const code = await request({ role: 'prod-deploy', wait: false, json: true }, t.ctx);
    expect(code).toBe(0);
    expect(t.asked).toEqual(['Reason (shown to the reviewers):']);
    const doc = JSON.parse(t.io.stdoutText()) as OutcomeJson;
    expect(doc).toEqual({
      request: expect.objectContaining({ state: 'pending' }),
      credential: null,
    });
    expect((await pendingOf(doc.request.id)).reason).toBe('hotfix INC-4211 (typed)');
    t.home.cleanup();
  });

  it('prints a plain line per change while waiting: each approval of a two-person role', async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    const done = request({ role: 'two-person', reason: 'two keys', json: true }, t.ctx);
    const id = (
      await stderrShows(t.io, /waiting for approval of (req_\w+) \(0 of 2 approvals/)
    )[1]!;
    expect(
      (await actor(broker, people.lee).post(`/v1/requests/${id}/reviews`, { decision: 'approve' }))
        .status,
    ).toBe(200);
    await stderrShows(
      t.io,
      new RegExp(`waiting for approval of ${id} \\(1 of 2 approvals from group:leads`),
    );
    expect(
      (await actor(broker, people.lin).post(`/v1/requests/${id}/reviews`, { decision: 'approve' }))
        .status,
    ).toBe(200);
    expect(await done).toBe(0);

    const lines = t.io.stderrText().trim().split('\n');
    expect(lines[0]).toBe(`review page for the approvers: ${broker.url}/ui/requests/${id}`);
    expect(lines[1]).toMatch(
      /^waiting for approval of req_\w+ \(0 of 2 approvals from group:leads; expires in (59m|1h)\)$/,
    );
    expect(lines[2]).toMatch(
      /^waiting for approval of req_\w+ \(1 of 2 approvals from group:leads; expires in (59m|1h)\)$/,
    );
    expect(lines[3]).toMatch(/^✔ approved by Lee, Lin · credential valid until \d\d:\d\d \(30m\)$/);
    // No spinner frames or cursor movement where there is no terminal.
    expect(t.io.stderrText()).not.toMatch(/[\u001b\r]/);

    const doc = JSON.parse(t.io.stdoutText()) as OutcomeJson;
    expect(doc.request.state).toBe('approved');
    expect(doc.credential).toEqual({
      role: 'two-person',
      request_id: id,
      expires_at: expect.any(String),
      env: [],
    });
    const stored = decodeCredential(
      await (await t.store()).get(credentialKey(broker.url, 'two-person')),
    );
    expect(stored?.requestId).toBe(id);
    // The token is in the store and nowhere in the output.
    expect(t.io.stdoutText() + t.io.stderrText()).not.toContain(stored!.token.reveal());
    t.home.cleanup();
  });

  it('prints the outcome as JSON on a denial too, then exits 3 with the comment', async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    const done = request({ role: 'two-person', reason: 'no', json: true }, t.ctx);
    const id = (await stderrShows(t.io, /waiting for approval of (req_\w+)/))[1]!;
    await actor(broker, people.lee).post(`/v1/requests/${id}/reviews`, {
      decision: 'deny',
      comment: 'not today',
    });
    await actor(broker, people.lin).post(`/v1/requests/${id}/reviews`, { decision: 'deny' });
    const err = (await done.catch((e: unknown) => e)) as JitError;
    expect(err.exitCode).toBe(ExitCode.Denied);
    expect(err.message).toBe(`${id} (two-person) was denied by Lee, Lin (Lee: "not today")`);
    expect(JSON.parse(t.io.stdoutText())).toMatchObject({
      request: { id, state: 'denied' },
      credential: null,
    });
    // Said once: by the error (main prints it), not also by the progress line.
    expect(t.io.stderrText()).not.toContain('was denied');
    t.home.cleanup();
  });

  it('Ctrl-C while waiting: exit 130 naming `jitctl wait`, and `wait` then picks the approval up', async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    const done = request({ role: 'two-person', reason: 'later' }, t.ctx);
    const id = (await stderrShows(t.io, /waiting for approval of (req_\w+)/))[1]!;
    t.interrupt();
    const err = (await done.catch((e: unknown) => e)) as JitError;
    expect(err.exitCode).toBe(ExitCode.Interrupted);
    expect(err.hint).toContain(`jitctl wait ${id}`);

    // Approved while nobody waited: `wait` fetches and stores the credential at once.
    await actor(broker, people.lee).post(`/v1/requests/${id}/reviews`, { decision: 'approve' });
    await actor(broker, people.lin).post(`/v1/requests/${id}/reviews`, { decision: 'approve' });
    const again = await atTerminal(broker, people.alice, { tty: false });
    expect(await wait({ id }, again.ctx)).toBe(0);
    expect(again.io.stderrText()).toMatch(/✔ approved by Lee, Lin · credential valid until/);
    const stored = decodeCredential(
      await (await again.store()).get(credentialKey(broker.url, 'two-person')),
    );
    expect(stored?.requestId).toBe(id);
    t.home.cleanup();
    again.home.cleanup();
  });

  it('a reviewer may wait on someone else’s request: the outcome, no credential', async () => {
    const alice = await atTerminal(broker, people.alice, { tty: false });
    await request({ role: 'two-person', reason: 'watched', wait: false }, alice.ctx);
    const id = alice.io.stdoutText().trim();
    const lee = await atTerminal(broker, people.lee, { tty: false });
    const done = wait({ id, json: true }, lee.ctx);
    await stderrShows(lee.io, /waiting for approval of/);
    await actor(broker, people.lee).post(`/v1/requests/${id}/reviews`, { decision: 'approve' });
    await actor(broker, people.lin).post(`/v1/requests/${id}/reviews`, { decision: 'approve' });
    expect(await done).toBe(0);
    expect(JSON.parse(lee.io.stdoutText())).toMatchObject({
      request: { id, state: 'approved' },
      credential: null,
    });
    expect(await (await lee.store()).get(credentialKey(broker.url, 'two-person'))).toBeUndefined();
    alice.home.cleanup();
    lee.home.cleanup();
  });

  it.each([
    [{ role: '' }, 'the role is empty'],
    [{ role: 'prod-deploy', for: '15x' }, '`--for 15x`: durations look like 15m, 1h30m, 90s or 2d'],
    [{ role: 'prod-deploy', for: '-5m' }, '`--for -5m` is negative'],
    [{ role: 'prod-deploy', timeout: 'soon' }, '`--timeout soon`: durations look like'],
    [
      { role: 'prod-deploy', wait: false, timeout: '5m' },
      '--timeout is for waiting, and --no-wait does not wait',
    ],
    [
      { role: 'prod-deploy', reason: 'x'.repeat(1001) },
      '--reason is 1001 characters; at most 1000 fit',
    ],
    [{ role: 'prod-deploy', ticket: 't'.repeat(201) }, '--ticket is longer than 200 characters'],
    [{ role: 'prod-deploy', for: '\u001b[2J' }, '`--for \\x1b[2J`'],
  ])('refuses %j before anything is sent (exit 2)', async (options, message) => {
    const t = await atTerminal(broker, people.alice);
    const before = (
      await actor(broker, people.alice).get<{ items: unknown[] }>(
        '/v1/requests?mine=true&limit=200',
      )
    ).body.items.length;
    const err = (await request(options, t.ctx).catch((e: unknown) => e)) as JitError;
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toContain(message);
    const after = (
      await actor(broker, people.alice).get<{ items: unknown[] }>(
        '/v1/requests?mine=true&limit=200',
      )
    ).body.items.length;
    expect(after).toBe(before);
    t.home.cleanup();
  });
});
