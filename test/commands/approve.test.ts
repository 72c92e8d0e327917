import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { ExitCode, type JitError } from '../../src/cli/errors.js';
import { run as approve } from '../../src/commands/approve.js';
import { run as deny } from '../../src/commands/deny.js';
import { atTerminal } from '../e2e/in-process.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * `jitctl approve` and `jitctl deny` at a terminal, in-process against a real broker: the whole
 * request is shown before the question, "no" sends nothing, "yes" reviews it, a partial approval
 * says how many are still needed. Without a terminal (the spawned binary) see test/e2e.
 */

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker({ policy: POLICY });
});
afterAll(async () => {
  await broker?.close();
});

const reviewsOf = async (id: string) =>
  (await actor(broker, people.lee).get<AccessRequest>(`/v1/requests/${id}`)).body.reviews;

describe('jitctl approve at a terminal', () => {
  it('shows the whole request, then asks; "no" sends nothing', async () => {
    const r = await file(actor(broker, people.alice), {
      role: 'two-person',
      duration: '45m',
      reason: 'migrate the orders table',
      ticket: 'CHG-12',
    });
    const t = await atTerminal(broker, people.lee);
    t.answers.push(false);
    expect(await approve({ id: r.id, comment: 'fine' }, t.ctx)).toBe(ExitCode.Error);
    expect(t.asked).toEqual([`Approve ${r.id}: Alice (alice-sub) asks for two-person for 45m?`]);
    const shown = t.io.stderrText();
    for (const line of [
      `Request      ${r.id}`,
      'Role         two-person',
      'State        pending: 0 of 2 approvals from group:leads; expires in',
      'Requester    Alice (alice-sub)',
      'Duration     45m',
      'Reason       migrate the orders table',
      'Ticket       CHG-12',
      'Approvers    group:leads; 2 needed',
      'Reviews      none yet',
      `Fingerprint  ${r.fingerprint}`,
    ]) {
      expect(shown).toContain(line);
    }
    expect(shown).toContain('nothing was sent');
    expect(await reviewsOf(r.id)).toEqual([]);
    expect(t.io.stdoutText()).toBe('');
    t.home.cleanup();
  });

  it('"yes" records the approval; the first of two says it stays pending, the second approves', async () => {
    const r = await file(actor(broker, people.alice), { role: 'two-person', reason: 'two keys' });
    const lee = await atTerminal(broker, people.lee);
    lee.answers.push(true);
    expect(await approve({ id: r.id, comment: 'ok from lee' }, lee.ctx)).toBe(0);
    expect(lee.io.stderrText()).toContain(
      `✔ recorded your approval of ${r.id}: 1 of 2; it stays pending`,
    );

    const lin = await atTerminal(broker, people.lin);
    lin.answers.push(true);
    expect(await approve({ id: r.id, json: true }, lin.ctx)).toBe(0);
    // Lin is shown lee's review before deciding.
    expect(lin.io.stderrText()).toMatch(
      /Reviews {6}Lee \(lee-sub\) approved \d\d:\d\d \(\d+s ago\): "ok from lee"/,
    );
    expect(lin.io.stderrText()).toMatch(
      new RegExp(`✔ approved ${r.id}: Alice \\(alice-sub\\) has two-person until \\d\\d:\\d\\d`),
    );
    const after = JSON.parse(lin.io.stdoutText()) as AccessRequest;
    expect(after).toMatchObject({ id: r.id, state: 'approved' });
    expect(after.reviews.map((x) => [x.reviewer.sub, x.decision, x.comment])).toEqual([
      ['lee-sub', 'approve', 'ok from lee'],
      ['lin-sub', 'approve', null],
    ]);
    lee.home.cleanup();
    lin.home.cleanup();
  });

  it('a second review by the same person: the broker’s answer, nothing recorded twice', async () => {
    const r = await file(actor(broker, people.alice), { role: 'two-person', reason: 'again' });
    const lee = await atTerminal(broker, people.lee);
    lee.answers.push(true, true);
    expect(await approve({ id: r.id }, lee.ctx)).toBe(0);
    const err = (await approve({ id: r.id }, lee.ctx).catch((e: unknown) => e)) as JitError;
    expect(err.message).toBe('you have already reviewed this request');
    expect(await reviewsOf(r.id)).toHaveLength(1);
    lee.home.cleanup();
  });

  it('deny with a comment at a terminal; escapes in what alice typed are shown escaped', async () => {
    const r = await file(actor(broker, people.alice), {
      role: 'prod-deploy',
      reason: 'urgent\u001b[2J\u001b[H please approve \u202e',
    });
    const lee = await atTerminal(broker, people.lee);
    lee.answers.push(true);
    expect(await deny({ id: r.id, comment: 'use the release train' }, lee.ctx)).toBe(0);
    expect(lee.asked[0]).toBe(`Deny ${r.id}: Alice (alice-sub) asks for prod-deploy for 15m?`);
    const shown = lee.io.stderrText();
    expect(shown).toContain('Reason       urgent\\x1b[2J\\x1b[H please approve \\u202e');
    expect(shown).not.toMatch(/[\u001b\u202e]/);
    expect(shown).toContain(`✔ denied ${r.id} (prod-deploy for Alice (alice-sub))`);
    expect((await reviewsOf(r.id))[0]).toMatchObject({
      decision: 'deny',
      comment: 'use the release train',
    });
    lee.home.cleanup();
  });

  it.each([
    [{ comment: 'c'.repeat(1001) }, '--comment is 1001 characters; at most 1000 fit'],
    [{ fingerprint: '' }, 'is not a fingerprint'],
    [{ fingerprint: 'f\u0007' }, '--fingerprint f\\x07 is not a fingerprint'],
  ])('refuses %j before asking anything (exit 2)', async (extra, message) => {
    const r = await file(actor(broker, people.alice), { role: 'two-person', reason: 'bad input' });
    const lee = await atTerminal(broker, people.lee);
    const err = (await approve({ id: r.id, ...extra }, lee.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toContain(message);
    expect(lee.asked).toEqual([]);
    lee.home.cleanup();
  });

  it('an id that is not one: exit 2 for nonsense, the broker’s 404 for a well-formed unknown id', async () => {
    const lee = await atTerminal(broker, people.lee);
    const bad = (await approve({ id: ' ' }, lee.ctx).catch((e: unknown) => e)) as JitError;
    expect(bad.exitCode).toBe(ExitCode.Usage);
    const unknown = (await approve({ id: 'req_7Hq2Xn4pQr9a' }, lee.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(unknown.message).toBe('no request req_7Hq2Xn4pQr9a');
    expect(unknown.hint).toContain('jitctl list --mine');
    lee.home.cleanup();
  });
});
