import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoleSummary } from '../../src/api/schemas.js';
import { run as roles } from '../../src/commands/roles.js';
import { atTerminal } from '../e2e/in-process.js';
import { POLICY, people } from '../server/helpers.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * `jitctl roles` in-process against a real broker: the roles a person may request or review, with
 * what asking takes; --all; --json (the API's role objects); nothing to show is a note on stderr;
 * text from the policy is escaped before it reaches the terminal.
 */

let broker: TestBroker;
let hostile: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker({ policy: POLICY });
  hostile = await startTestBroker({
    policy: `
roles:
  odd:
    description: "red \\u001b[31malert\\u001b[0m and \\u202eright-to-left"
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 5m
    max_duration: 10m
    pending_ttl: 10m
    credential:
      audience: https://odd.example.com
`,
  });
});
afterAll(async () => {
  await broker?.close();
  await hostile?.close();
});

const rowOf = (text: string, role: string) =>
  text.split('\n').find((l) => l.startsWith(`${role} `));

describe('jitctl roles', () => {
  it("a developer's table: the roles they may request, with durations, approvals and step-up", async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    expect(await roles({}, t.ctx)).toBe(0);
    const out = t.io.stdoutText();
    expect(out.split('\n')[0]).toMatch(
      /^ROLE\s+YOU MAY\s+DURATION\s+APPROVALS\s+STEP-UP\s+DESCRIPTION$/,
    );
    expect(rowOf(out, 'prod-deploy')).toMatch(
      /^prod-deploy\s+request\s+15m, max 1h\s+1 of group:leads\s+mfa within 5m\s+Deploy to production$/,
    );
    expect(rowOf(out, 'self-service')).toMatch(/none \(granted on request\)/);
    expect(rowOf(out, 'two-person')).toMatch(/2 of group:leads\s+-\s+-$/);
    // Roles alice may neither request nor review are not listed.
    expect(rowOf(out, 'lead-escalation')).toBeUndefined();
    expect(rowOf(out, 'by-name')).toBeUndefined();
    expect(t.io.stderrText()).toBe('');
    t.home.cleanup();
  });

  it("a lead's table says what they may do with each role", async () => {
    const t = await atTerminal(broker, people.lee, { tty: false });
    expect(await roles({}, t.ctx)).toBe(0);
    const out = t.io.stdoutText();
    expect(rowOf(out, 'prod-deploy')).toMatch(/^prod-deploy\s+review\s/);
    expect(rowOf(out, 'self-service')).toMatch(/^self-service\s+request, review\s/);
    expect(rowOf(out, 'by-name')).toMatch(/^by-name\s+review\s/);
    t.home.cleanup();
  });

  it('nothing to show is a note on stderr; --all lists every role', async () => {
    const t = await atTerminal(broker, people.mallory, { tty: false });
    expect(await roles({}, t.ctx)).toBe(0);
    expect(t.io.stdoutText()).toBe('');
    expect(t.io.stderrText()).toMatch(
      /^no role you may request or review \(\d+ in the policy; --all lists them\)\n$/,
    );

    const all = await atTerminal(broker, people.mallory, { tty: false });
    expect(await roles({ all: true }, all.ctx)).toBe(0);
    const out = all.io.stdoutText();
    for (const role of [
      'prod-deploy',
      'two-person',
      'self-service',
      'lead-escalation',
      'by-name',
    ]) {
      expect(rowOf(out, role), role).toMatch(new RegExp(`^${role}\\s+-\\s`));
    }
    t.home.cleanup();
    all.home.cleanup();
  });

  it("--json prints the API's role objects, filtered the same way", async () => {
    const t = await atTerminal(broker, people.alice, { tty: false });
    expect(await roles({ json: true }, t.ctx)).toBe(0);
    const parsed = JSON.parse(t.io.stdoutText()) as RoleSummary[];
    expect(parsed.map((r) => r.name).sort()).toEqual(['prod-deploy', 'self-service', 'two-person']);
    const prod = parsed.find((r) => r.name === 'prod-deploy')!;
    expect(prod).toMatchObject({
      can_request: true,
      can_review: false,
      approvals: 1,
      step_up: { acr: 'mfa', max_age: '5m' },
      env: ['KUBE_TOKEN', 'JIT_INFO'],
    });
    t.home.cleanup();
  });

  it('escapes control and bidi characters from the policy before they reach the terminal', async () => {
    const t = await atTerminal(hostile, people.alice, { tty: false });
    expect(await roles({}, t.ctx)).toBe(0);
    const out = t.io.stdoutText();
    expect(out).not.toMatch(/[\u001b\u202e]/);
    expect(rowOf(out, 'odd')).toContain('alert');
    // The characters did reach the CLI (the broker keeps text as given): the JSON form has them.
    const json = await atTerminal(hostile, people.alice, { tty: false });
    expect(await roles({ json: true }, json.ctx)).toBe(0);
    expect(json.io.stdoutText()).not.toMatch(/[\u001b\u202e]/);
    const [odd] = JSON.parse(json.io.stdoutText()) as RoleSummary[];
    expect(odd?.description).toContain('\u001b[31m');
    expect(odd?.description).toContain('\u202e');
    t.home.cleanup();
    json.home.cleanup();
  });
});
