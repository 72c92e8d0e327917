import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import type { OutcomeJson } from '../../src/cli/request-flow.js';
import {
  type DevBroker,
  expectNoRawControls,
  signIn,
  startDevBroker,
  throughStepUps,
  type User,
  user,
  waitingId,
} from './support.js';

/**
 * Issue #4 with real processes: one `jitctl server --dev` (its identity provider, the e2e policy
 * of support.ts), alice and bob asking, lee reviewing, ada auditing, each with their own home and
 * encrypted file store, every command the real binary. Nothing is mocked.
 */

// Real processes on a machine that may be busy: each step has its own generous wait, and a test
// of several steps gets the sum of them.
vi.setConfig({ testTimeout: 180_000 });

let broker: DevBroker;
let alice: User;
let bob: User;
let lee: User;
let ada: User;

async function fileNoWait(u: User, role: string, extra: string[] = []): Promise<string> {
  const r = await u.run(['request', role, '--reason', 'e2e test', '--no-wait', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  const id = r.stdout.trim();
  expect(id).toMatch(/^req_[A-Za-z0-9]{12}$/);
  return id;
}

async function state(u: User, id: string): Promise<AccessRequest> {
  const r = await u.run(['show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as AccessRequest;
}

beforeAll(async () => {
  broker = await startDevBroker();
  alice = user('alice', broker);
  bob = user('bob', broker);
  lee = user('lee', broker);
  ada = user('ada', broker);
  // alice and bob add their one-time code; lee signs in with a password only, so his first
  // review of prod-deploy (step_up: mfa within 5m) needs a step-up.
  await Promise.all([
    signIn(alice, broker, true),
    signIn(bob, broker, true),
    signIn(lee, broker, false),
    signIn(ada, broker, true),
  ]);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  for (const u of [alice, bob, lee, ada]) u?.home.cleanup();
});

describe('approve', () => {
  it('alice waits; lee lists, shows and approves with step-up; her command stores the credential', async () => {
    const waiting = alice.spawn([
      'request',
      'prod-deploy',
      '--for',
      '15m',
      '--reason',
      'hotfix INC-4211',
      '--ticket',
      'INC-4211',
      '--json',
    ]);
    const id = await waitingId(waiting, alice);
    expect(waiting.stderr()).toMatch(
      new RegExp(
        `waiting for approval of ${id} \\(0 of 1 approvals from group:leads; expires in (\\d+m|1h)\\)`,
      ),
    );

    const list = await lee.run(['list', '--reviewable', '--state', 'pending']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+ROLE\s+REQUESTER\s+STATE\s+AGE\s+DURATION\s+REASON$/m);
    expect(list.stdout).toMatch(
      new RegExp(
        `^${id}\\s+prod-deploy\\s+Alice Developer\\s+pending 0/1\\s+\\d+s\\s+15m\\s+hotfix INC-4211$`,
        'm',
      ),
    );

    const show = await lee.run(['show', id]);
    expect(show.code, show.stderr).toBe(0);
    for (const line of [
      `Request      ${id}`,
      'Role         prod-deploy',
      'Requester    Alice Developer (alice)',
      'Duration     15m',
      'Reason       hotfix INC-4211',
      'Ticket       INC-4211',
      'Approvers    group:leads; 1 needed',
      'Reviews      none yet',
    ]) {
      expect(show.stdout).toContain(line);
    }
    expect(show.stdout).toMatch(/^Fingerprint {2}[0-9a-f]{4}(-[0-9a-f]{4}){3}$/m);

    // The review needs fresh MFA (prod-deploy's step_up): the broker challenges, jitctl signs
    // lee in again through the provider, and the review goes through.
    const approve = lee.spawn(['approve', id, '--comment', 'ship it', '--yes']);
    await throughStepUps(approve, lee, /approved req_/);
    const approved = await approve.done;
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stderr).toContain('reviewing');
    expect(approved.stderr).toContain('(mfa within 5m)');
    expect(approved.stderr).toMatch(
      new RegExp(
        `✔ approved ${id}: Alice Developer \\(alice\\) has prod-deploy until \\d\\d:\\d\\d`,
      ),
    );

    const result = await waiting.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(
      /✔ approved by Lee Lead · credential valid until \d\d:\d\d \(1[45]m\)/,
    );
    const doc = JSON.parse(result.stdout) as OutcomeJson;
    expect(Object.keys(doc)).toEqual(['request', 'credential']);
    expect(doc.request).toMatchObject({ id, state: 'approved', role: 'prod-deploy' });
    expect(doc.request.reviews).toEqual([
      expect.objectContaining({ decision: 'approve', comment: 'ship it' }),
    ]);
    expect(doc.credential).toEqual({
      role: 'prod-deploy',
      request_id: id,
      expires_at: expect.any(String),
      env: ['KUBE_TOKEN'],
    });

    const stored = await alice.credential('prod-deploy');
    expect(stored).toMatchObject({ role: 'prod-deploy', requestId: id });
    expect(Date.parse(stored!.expiresAt)).toBe(Date.parse(doc.credential!.expires_at));
    expect(stored!.token.reveal().split('.')).toHaveLength(3);

    const status = await alice.run(['status', '--json']);
    expect(JSON.parse(status.stdout).credentials).toEqual([
      expect.objectContaining({ role: 'prod-deploy', request_id: id, expired: false }),
    ]);

    // The credential works: exec hands it to the command.
    const exec = await alice.run([
      'exec',
      'prod-deploy',
      '--',
      'sh',
      '-c',
      'test -n "$KUBE_TOKEN" && echo "role=$JITCTL_ROLE request=$JITCTL_REQUEST_ID"',
    ]);
    expect(exec.stdout.trim()).toBe(`role=prod-deploy request=${id}`);
  });

  it('a role approved at once: the credential is there before anyone reviews', async () => {
    const r = await alice.run(['request', 'db-read', '--for', '10m']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /✔ approved \(no review needed\) · credential valid until \d\d:\d\d \(10m\)/,
    );
    expect(r.stderr).toContain('use it: jitctl exec db-read -- <command>');
    expect((await alice.credential('db-read'))?.env).toHaveProperty('PGPASSWORD');
  });
});

describe('deny, cancel, revoke, expiry', () => {
  it("deny: bob's waiting command exits 3 with lee's comment", async () => {
    const waiting = bob.spawn(['request', 'staging-admin', '--reason', 'rotate certs']);
    const id = await waitingId(waiting);
    const deny = await lee.run(['deny', id, '--comment', 'use the runbook instead', '--yes']);
    expect(deny.code, deny.stderr).toBe(0);
    expect(deny.stderr).toContain(`✔ denied ${id} (staging-admin for Bob Developer (bob))`);

    const r = await waiting.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `${id} (staging-admin) was denied by Lee Lead (Lee Lead: "use the runbook instead")`,
    );
    expect(await bob.credential('staging-admin')).toBeUndefined();
    // Terminal is terminal: a late approval is refused before any question is asked.
    const late = await lee.run(['approve', id, '--yes']);
    expect(late.code).toBe(3);
    expect(late.stderr).toContain(`${id} is denied; only pending requests can be reviewed`);
  });

  it('cancel: the requester withdraws; a waiting `jitctl wait` wakes with exit 3; repeating is harmless', async () => {
    const id = await fileNoWait(alice, 'staging-admin');
    const waiting = alice.spawn(['wait', id]);
    await waiting.waitForOutput(`waiting for approval of ${id}`);
    const cancel = await alice.run(['cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stderr).toContain(`✔ cancelled ${id} (staging-admin for 1h)`);
    const r = await waiting.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${id} (staging-admin) was cancelled by its requester`);
    expect((await alice.run(['cancel', id])).code).toBe(0);
    // Only the requester cancels: lee denies instead.
    const other = await fileNoWait(alice, 'staging-admin');
    const byLee = await lee.run(['cancel', other]);
    expect(byLee.code).toBe(3);
    expect(byLee.stderr).toContain('only the requester can cancel a request');
    expect(byLee.stderr).toContain('hint: reviewers deny it instead');
  });

  it('revoke: ends an approved request and removes the stored credential; wait then exits 3', async () => {
    const r = await alice.run(['request', 'db-read', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const id = (JSON.parse(r.stdout) as OutcomeJson).request.id;
    expect((await alice.credential('db-read'))?.requestId).toBe(id);

    const noTerminal = await alice.run(['revoke', id]);
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toContain('Revoking asks for confirmation, and there is no terminal');
    expect((await state(alice, id)).state).toBe('approved');

    const revoke = await alice.run(['revoke', id, '--yes', '--json']);
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(JSON.parse(revoke.stdout)).toMatchObject({ id, state: 'revoked' });
    expect(revoke.stderr).toContain(`✔ revoked ${id} (db-read for Alice Developer (alice))`);
    expect(revoke.stderr).toContain('removed the stored credential for db-read');
    expect(await alice.credential('db-read')).toBeUndefined();
    const status = await alice.run(['status', '--json']);
    expect(
      JSON.parse(status.stdout).credentials.map((c: { role: string }) => c.role),
    ).not.toContain('db-read');

    const wait = await alice.run(['wait', id]);
    expect(wait.code).toBe(3);
    expect(wait.stderr).toContain(`${id} (db-read) was revoked`);
    // A pending request is not revoked but cancelled, and jitctl says so.
    const pending = await fileNoWait(alice, 'staging-admin');
    const wrong = await alice.run(['revoke', pending, '--yes']);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain(
      `hint: a pending request is withdrawn with \`jitctl cancel ${pending}\``,
    );
  });

  it('expiry: a pending request lapses at its pending TTL and the waiting command exits 3', async () => {
    const r = await alice.run(['request', 'quick-expiry', '--reason', 'will lapse']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /waiting for approval of (req_\w+) \(0 of 1 approvals from group:leads; expires in \ds\)/,
    );
    expect(r.stderr).toMatch(/req_\w+ \(quick-expiry\) expired before enough approvals \(0 of 1\)/);
    expect(r.stderr).toContain('hint: file a new request');
  });
});

describe('waiting ends without a decision', () => {
  it('--timeout: exit 5, the request stays pending, and the command to resume is printed', async () => {
    const r = await alice.run([
      'request',
      'staging-admin',
      '--reason',
      'slow review',
      '--timeout',
      '2s',
    ]);
    expect(r.code).toBe(5);
    const id = /(req_[A-Za-z0-9]+) is still pending/.exec(r.stderr)?.[1];
    expect(id, r.stderr).toBeDefined();
    expect(r.stderr).toContain(`hint: it stays filed: resume with \`jitctl wait ${id}\``);
    expect((await state(alice, id!)).state).toBe('pending');
    const again = await alice.run(['wait', id!, '--timeout', '1s', '--json']);
    expect(again.code).toBe(5);
    expect(JSON.parse(again.stdout)).toMatchObject({
      request: { id, state: 'pending' },
      credential: null,
    });
  });

  it('Ctrl-C: exit 130, the request stays filed, `jitctl wait <id>` is printed and resumes it', async () => {
    const waiting = alice.spawn(['request', 'staging-admin', '--reason', 'interrupted']);
    const id = await waitingId(waiting);
    waiting.child.kill('SIGINT');
    const r = await waiting.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`error: stopped waiting; ${id} is still filed`);
    expect(r.stderr).toContain(`hint: resume with \`jitctl wait ${id}\``);
    expect((await state(alice, id)).state).toBe('pending');

    const resumed = alice.spawn(['wait', id]);
    await resumed.waitForOutput(`waiting for approval of ${id}`);
    expect((await lee.run(['approve', id, '--yes'])).code).toBe(0);
    const done = await resumed.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/✔ approved by Lee Lead · credential valid until/);
    expect((await alice.credential('staging-admin'))?.requestId).toBe(id);
  });

  it('--no-wait prints the id (stdout) and state (stderr); wait --json fetches the credential once approved', async () => {
    const r = await bob.run([
      'request',
      'staging-admin',
      '--reason',
      'later',
      '--for',
      '30m',
      '--no-wait',
    ]);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    expect(r.stderr).toContain(
      `filed ${id} for staging-admin (30m): pending, 0 of 1 approvals from group:leads`,
    );
    expect(r.stderr).toContain(`wait for it: jitctl wait ${id}`);
    expect((await lee.run(['approve', id, '--yes'])).code).toBe(0);
    const w = await bob.run(['wait', id, '--json']);
    expect(w.code, w.stderr).toBe(0);
    expect(JSON.parse(w.stdout)).toMatchObject({
      request: { id, state: 'approved' },
      credential: { role: 'staging-admin', request_id: id, env: ['KUBE_TOKEN'] },
    });
    expect((await bob.credential('staging-admin'))?.requestId).toBe(id);
  });
});

describe('who may review', () => {
  it('a developer who is not an approver cannot even see the request: exit 3 with the broker’s message', async () => {
    const id = await fileNoWait(alice, 'staging-admin');
    const r = await bob.run(['approve', id, '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `you may not see request ${id}: you neither filed it nor review role staging-admin`,
    );
    // An auditor sees it, but may not review it.
    const a = await ada.run(['deny', id, '--yes']);
    expect(a.code).toBe(3);
    expect(a.stderr).toContain('you may not review requests for role staging-admin');
    expect(a.stderr).toContain('hint: its approvers are group:leads');
    expect((await state(alice, id)).reviews).toEqual([]);
  });

  it('self-approval is refused', async () => {
    const id = await fileNoWait(alice, 'staging-admin');
    const r = await alice.run(['approve', id, '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('you cannot review your own request');
    expect(r.stderr).toContain('hint: ask one of group:leads to review it');
    expect((await state(alice, id)).state).toBe('pending');
  });

  it('without a terminal, approve and deny need --yes (exit 2) and change nothing', async () => {
    const id = await fileNoWait(alice, 'staging-admin');
    for (const verb of ['approve', 'deny']) {
      const r = await lee.run([verb, id]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/asks for confirmation, and there is no terminal to ask on/);
      expect(r.stderr).toContain('then pass --yes');
    }
    expect((await state(alice, id)).reviews).toEqual([]);
  });

  it('--fingerprint: a review naming another fingerprint is refused', async () => {
    const id = await fileNoWait(alice, 'staging-admin');
    const { fingerprint } = await state(alice, id);
    const wrong = await lee.run(['approve', id, '--yes', '--fingerprint', '0000-0000-0000-0000']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(
      `does not match fingerprint 0000-0000-0000-0000 (it is ${fingerprint})`,
    );
    expect((await state(alice, id)).state).toBe('pending');
    const right = await lee.run(['approve', id, '--yes', '--fingerprint', fingerprint, '--json']);
    expect(right.code, right.stderr).toBe(0);
    expect(JSON.parse(right.stdout)).toMatchObject({ id, state: 'approved' });
  });
});

describe('bad input', () => {
  it('an unknown role lists the roles you may request (exit 2)', async () => {
    const r = await alice.run(['request', 'prod-deplyo', '--reason', 'typo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: there is no role "prod-deplyo"');
    expect(r.stderr).toMatch(/hint: roles you may request: .*prod-deploy.*staging-admin/);
  });

  it('a missing reason without a terminal is a usage error naming --reason', async () => {
    const r = await alice.run(['request', 'staging-admin']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('role staging-admin requires a reason');
    expect(r.stderr).toContain('hint: pass --reason');
  });

  it.each([
    [['--for', '15x'], '`--for 15x`: durations look like 15m, 1h30m, 90s or 2d'],
    [['--for', '0m'], '`--for 0m` is zero'],
    [['--timeout', '1.5h'], '`--timeout 1.5h`: durations look like'],
    [['--for', '5h'], '`--for 5h` is longer than the maximum of 4h for staging-admin'],
  ])('%j is refused with exit 2 before anything is filed', async (flags, message) => {
    const r = await alice.run(['request', 'staging-admin', '--reason', 'x', ...flags]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('list: a bad --state or --limit is a usage error', async () => {
    const s = await lee.run(['list', '--state', 'open']);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain(
      'hint: states: pending, scheduled, approved, denied, cancelled, expired, revoked',
    );
    expect((await lee.run(['list', '--limit', '0'])).code).toBe(2);
  });

  it('an unknown request id: exit 1 with what ids look like', async () => {
    const r = await lee.run(['show', 'req_nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: no request "req_nope"');
    expect(r.stderr).toContain('hint: request ids look like req_');
  });

  it('escape sequences in a reason and a comment are shown escaped by show, list, approve and wait', async () => {
    const reason = 'fix \u001b[2J\u001b]0;pwned\u0007 now \u202eevil';
    const id = await fileNoWait(alice, 'staging-admin', ['--reason', reason]);
    const escaped = 'fix \\x1b[2J\\x1b]0;pwned\\x07 now \\u202eevil';

    const show = await lee.run(['show', id]);
    expect(show.stdout).toContain(`Reason       ${escaped}`);
    const list = await lee.run(['list', '--reviewable']);
    expect(list.stdout).toContain(escaped);
    const deny = await lee.run(['deny', id, '--yes', '--comment', 'no \u001b[31mred\u001b[0m']);
    expect(deny.code, deny.stderr).toBe(0);
    expect(deny.stderr).toContain(`Reason       ${escaped}`);
    const wait = await alice.run(['wait', id]);
    expect(wait.code).toBe(3);
    expect(wait.stderr).toContain('"no \\x1b[31mred\\x1b[0m"');
    // The JSON keeps the text as it was typed (JSON escapes it); a terminal never sees it raw.
    const json = await lee.run(['show', id, '--json']);
    expect(JSON.parse(json.stdout).reason).toBe(reason);
    for (const r of [show, list, deny, wait, json]) {
      expectNoRawControls(r.stdout);
      expectNoRawControls(r.stderr);
    }
  });
});

describe('secrets', () => {
  it('no token or refresh token appeared in any output', async () => {
    const secrets = (await Promise.all([alice, bob, lee, ada].map((u) => u.secrets()))).flat();
    expect(secrets.length).toBeGreaterThan(6);
    const all = [alice, bob, lee, ada].flatMap((u) => u.outputs).join('\n');
    for (const s of secrets) {
      expect(all).not.toContain(s);
      const sig = s.split('.')[2];
      if (sig) expect(all).not.toContain(sig);
    }
    expect(all).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}\./);
  });
});
