import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { ExitCode, type JitError } from '../../src/cli/errors.js';
import { run as list } from '../../src/commands/list.js';
import { run as show } from '../../src/commands/show.js';
import { atTerminal } from '../e2e/in-process.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * `jitctl list` and `jitctl show` in-process against a real broker: the table's columns, filters,
 * pages fetched up to --limit, the JSON forms (the API's request objects), and what goes to
 * stdout (data) versus stderr (notes).
 */

let broker: TestBroker;
const ids: string[] = [];

beforeAll(async () => {
  broker = await startTestBroker({ policy: POLICY });
  for (let i = 0; i < 7; i++) {
    ids.push(
      (await file(actor(broker, people.bob), { role: 'two-person', reason: `batch ${i}` })).id,
    );
  }
  const denied = await file(actor(broker, people.alice), {
    role: 'prod-deploy',
    duration: '20m',
    reason: 'hotfix',
    ticket: 'INC-1',
  });
  await actor(broker, people.lee).post(`/v1/requests/${denied.id}/reviews`, {
    decision: 'deny',
    comment: 'no',
  });
  ids.push(denied.id);
});
afterAll(async () => {
  await broker?.close();
});

describe('jitctl list', () => {
  it('a table of what the reviewer may see, newest first', async () => {
    const t = await atTerminal(broker, people.lee, { tty: false });
    expect(await list({ reviewable: true }, t.ctx)).toBe(0);
    const lines = t.io.stdoutText().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+ROLE\s+REQUESTER\s+STATE\s+AGE\s+DURATION\s+REASON$/);
    expect(lines).toHaveLength(9);
    expect(lines[1]).toMatch(
      new RegExp(`^${ids[7]}\\s+prod-deploy\\s+Alice\\s+denied\\s+\\d+s\\s+20m\\s+hotfix$`),
    );
    expect(lines[2]).toMatch(
      new RegExp(`^${ids[6]}\\s+two-person\\s+Bob\\s+pending 0/2\\s+\\d+s\\s+30m\\s+batch 6$`),
    );
    expect(t.io.stderrText()).toBe('');
    t.home.cleanup();
  });

  it('--state and --mine filter; nothing found is a note on stderr and an empty stdout', async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    expect(await list({ mine: true, state: 'denied' }, t.ctx)).toBe(0);
    expect(t.io.stdoutText()).toContain(ids[7]);
    expect(t.io.stdoutText()).not.toContain(ids[0]);
    const empty = await atTerminal(broker, people.alice, { tty: false });
    expect(await list({ mine: true, state: 'revoked' }, empty.ctx)).toBe(0);
    expect(empty.io.stdoutText()).toBe('');
    expect(empty.io.stderrText()).toBe('no revoked requests filed by you\n');
    t.home.cleanup();
    empty.home.cleanup();
  });

  it('--limit: fetches what it needs and says there are more', async () => {
    const t = await atTerminal(broker, people.bob, { tty: false });
    expect(await list({ mine: true, limit: '5' }, t.ctx)).toBe(0);
    expect(t.io.stdoutText().trimEnd().split('\n')).toHaveLength(6);
    expect(t.io.stderrText()).toMatch(/showing the first 5/);
    t.home.cleanup();
  });

  it('--json: an array of the API’s request objects, nothing else on stdout', async () => {
    const t = await atTerminal(broker, people.bob, { tty: false });
    expect(await list({ mine: true, json: true }, t.ctx)).toBe(0);
    const items = JSON.parse(t.io.stdoutText()) as AccessRequest[];
    expect(items.map((r) => r.id)).toEqual([...ids.slice(0, 7)].reverse());
    expect(Object.keys(items[0]!)).toEqual([
      'id',
      'role',
      'state',
      'requester',
      'duration',
      'reason',
      'ticket',
      'created_at',
      'expires_at',
      'approvals_required',
      'reviews',
      'approvers',
      'fingerprint',
      // the lifecycle's (docs/api.md)
      'starts_at',
      'awaiting',
      'approvals_by',
      'decided_by_rule',
      'extended',
      'extension',
      'break_glass',
    ]);
    t.home.cleanup();
  });

  it.each([
    [{ state: 'open' }, '--state open is not a request state'],
    [{ limit: '0' }, '--limit 0 is not a number from 1 to 1000'],
    [{ limit: '1e3' }, '--limit 1e3 is not a number'],
    [{ mine: true, reviewable: true }, '--mine and --reviewable cannot be combined'],
  ])('refuses %j (exit 2)', async (options, message) => {
    const t = await atTerminal(broker, people.lee, { tty: false });
    const err = (await list(options, t.ctx).catch((e: unknown) => e)) as JitError;
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toContain(message);
    t.home.cleanup();
  });
});

describe('jitctl show', () => {
  it('every field, the reviews with their comments; --json is the API object', async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    expect(await show({ id: ids[7]! }, t.ctx)).toBe(0);
    const out = t.io.stdoutText();
    expect(out).toContain('State        denied\n');
    expect(out).toContain('Ticket       INC-1\n');
    expect(out).toMatch(/Reviews {6}Lee \(lee-sub\) denied \d\d:\d\d \(\d+s ago\): "no"\n/);

    const j = await atTerminal(broker, people.alice, { tty: false });
    expect(await show({ id: ids[7]!, json: true }, j.ctx)).toBe(0);
    const api = await actor(broker, people.alice).get<AccessRequest>(`/v1/requests/${ids[7]}`);
    expect(JSON.parse(j.io.stdoutText())).toEqual(api.body);
    t.home.cleanup();
    j.home.cleanup();
  });
});
