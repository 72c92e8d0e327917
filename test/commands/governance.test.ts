import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { people } from '../server/helpers.js';
import { startTestBroker, storeSession, type TestBroker } from '../support/broker.js';
import { runCli, type TestHome, testHome } from '../support/cli.js';
import type { Person } from '../support/test-issuer.js';

/**
 * `jitctl report` and `jitctl access-review …`, the real binary against a real broker: an auditor
 * opens a campaign, a reviewer removes Alice, and Alice's next `jitctl request` is refused (exit
 * 3) with a message naming the campaign; the report in every format, and the usage errors.
 */

const sec = { sub: 'sec-sub', name: 'Sec', groups: ['security'] } satisfies Person;
const POLICY = `
roles:
  ro:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    credential: { audience: https://ro.example.com }
`;

const homes: TestHome[] = [];
function homeOf(): TestHome {
  const h = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: 'correct horse battery' });
  homes.push(h);
  return h;
}

describe('jitctl report and access-review', () => {
  let b: TestBroker;
  const home: Record<string, TestHome> = {};
  const cli = (who: string, args: string[]) =>
    runCli([...args, '--server', b.url], { env: home[who]!.env });
  beforeAll(async () => {
    b = await startTestBroker({
      policy: POLICY,
      settings: { auditors: 'auditors', admins: 'admins' },
    });
    for (const [name, person] of [
      ['ada', people.ada],
      ['sec', sec],
      ['alice', people.alice],
    ] as const) {
      home[name] = homeOf();
      const ctx = createContext({ env: home[name]!.env, io: testIO() });
      await storeSession(await openStore(ctx, 'file'), b, person);
    }
  });
  afterAll(async () => {
    await b?.close();
    for (const h of homes) h.cleanup();
  });

  let id = '';

  it('an auditor opens a campaign; a reviewer removes Alice; her next request is refused', async () => {
    const first = await cli('alice', ['request', 'ro', '--reason', 'logs', '--no-wait']);
    expect(first.code, first.stderr).toBe(0);

    const started = await cli('ada', [
      'access-review',
      'start',
      '--role',
      'ro',
      '--reviewers',
      'group:security',
      '--due',
      '14d',
      '--title',
      'Quarterly',
    ]);
    expect(started.code, started.stderr).toBe(0);
    id = /opened access review (ar_\w+)/.exec(started.stdout)![1]!;
    expect(started.stdout).toContain('group:developers');
    const alice = /^\s*(\d+)\s+ro\s+person\s+Alice/m.exec(started.stdout);
    expect(alice, started.stdout).not.toBeNull();

    const refusedStart = await cli('alice', [
      'access-review',
      'start',
      '--all',
      '--reviewers',
      'group:security',
    ]);
    expect(refusedStart.code).toBe(3);
    expect(refusedStart.stderr).toContain('only auditors and admins');

    const noComment = await cli('sec', ['access-review', 'decide', id, alice![1]!, 'remove']);
    expect(noComment.code).toBe(2);
    expect(noComment.stderr).toContain('comment');
    const decided = await cli('sec', [
      'access-review',
      'decide',
      id,
      alice![1]!,
      'remove',
      '--comment',
      'left the team',
    ]);
    expect(decided.code, decided.stderr).toBe(0);
    expect(decided.stdout).toContain('in force at the broker now');

    const refused = await cli('alice', ['request', 'ro', '--reason', 'again', '--no-wait']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`access review ${id} removed your access to ro`);
    expect(refused.stderr).toContain('left the team');

    const list = await cli('sec', ['access-review', 'list']);
    expect(list.stdout).toContain(id);
    expect(list.stdout).toContain('Quarterly');
    const closed = await cli('sec', ['access-review', 'close', id]);
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toContain('remove Alice from group developers');
    const json = await cli('ada', ['access-review', 'show', id, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id, state: 'closed' });
  });

  it('report: text to the terminal, HTML to a private file, CSV and JSON for tools', async () => {
    const text = await cli('ada', ['report', '--since', '7d']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Access report');
    expect(text.stdout).toContain('ro');
    const file = join(home.ada!.dir, 'report.html');
    // An earlier file that others could read is made private, not only a new one.
    writeFileSync(file, 'old', { mode: 0o644 });
    chmodSync(file, 0o644);
    const html = await cli('ada', ['report', '--format', 'html', '--output', file]);
    expect(html.code, html.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const body = readFileSync(file, 'utf8');
    expect(body).toContain('<svg');
    expect(body).not.toContain('<script');
    const csv = await cli('ada', ['report', '--format', 'csv', '--role', 'ro']);
    // The refused request was never filed.
    expect(csv.stdout).toContain('requests,ro,,filed,1');
    const json = await cli('ada', ['report', '--format', 'json']);
    expect(JSON.parse(json.stdout).totals.requests).toBe(1);
  });

  it('refuses bad input and non-auditors with the usual exit codes', async () => {
    expect((await cli('ada', ['report', '--format', 'pdf'])).code).toBe(2);
    const since = await cli('ada', ['report', '--since', 'last week']);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('since');
    const forbidden = await cli('alice', ['report']);
    expect(forbidden.code).toBe(3);
    expect((await cli('sec', ['access-review', 'decide', id, 'x', 'keep'])).code).toBe(2);
    expect((await cli('sec', ['access-review', 'show', 'ar_nope'])).code).toBe(1);
  });
});
