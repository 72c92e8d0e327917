import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  credentialKey,
  decodeCredential,
  encodeCredential,
} from '../../src/credentials/records.js';
import {
  FIXTURE_POLICY,
  fileStoreEnv,
  homeStore,
  seedCredential,
  startCredentialBroker,
  waitFor,
} from '../credentials/fixtures.js';
import { gone } from '../exec/recorder.js';
import { http, rawSql, type TestBroker } from '../support/broker.js';
import { runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';

/**
 * Revocation as the requester's machine meets it (issue 13), with the real binary against a real
 * broker: a stored credential of a revoked grant is refused by exec, shell's sibling credential
 * and kubectl's plugin (exit 3, who, when, why), and dropped by status; a running exec is ended,
 * command tree and all, within a second of the revocation; `on_revoke: warn` only warns;
 * `kill_at_expiry` from policy; a credential near its own end is replaced by a fresh one; the
 * broker out of reach (the grace, then exit 69). And who ran what (issue 16): the command's
 * start and end audited, queued while the broker is away and sent by a later command.
 */

const POLICY = `${FIXTURE_POLICY}
  short:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    credential: { audience: https://short.example.com, ttl: 30s, env: { KUBE_TOKEN: "{{token}}" } }
  warned:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    on_revoke: warn
    credential: { audience: https://warned.example.com }
  timed:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    kill_at_expiry: true
    credential: { audience: https://timed.example.com }
  strict:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1h
    audit_commands: full
    audit_commands_required: true
    credential: { audience: https://strict.example.com }
`;

const LEAD = { sub: 'lee-sub', name: 'Lee Lead', email: 'lee@example.com', groups: ['leads'] };

let b: TestBroker;
beforeAll(async () => {
  b = await startCredentialBroker(POLICY);
});
afterAll(async () => b?.close());

const homes: TestHome[] = [];
afterAll(() => {
  for (const h of homes) h.cleanup();
});
function home(): { h: TestHome; env: Record<string, string> } {
  const h = testHome();
  homes.push(h);
  return { h, env: fileStoreEnv(h, b.url) };
}

async function revoke(id: string, reason?: string) {
  const r = await http(b.url, 'POST', `/v1/requests/${id}/revoke`, {
    token: await b.issuer.token(LEAD),
    body: reason === undefined ? {} : { reason },
  });
  expect(r.status, r.text).toBe(200);
}

async function auditOf(id: string, type: string) {
  const rows = (await rawSql(
    b.dbUrl,
    `select data from audit_events where request_id = '${id}' and type = '${type}' order by seq`,
  )) as { data: string }[];
  return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

describe('a revoked grant on the requester’s machine', () => {
  it('credential --kube and a new exec refuse its stored credential: exit 3, who, when, why', async () => {
    const { h, env } = home();
    const seeded = await seedCredential(homeStore(h), { role: 'prod', broker: b });
    await revoke(seeded.requestId, 'INC-4211 is closed');
    for (const args of [
      ['credential', 'prod', '--kube'],
      ['exec', 'prod', '--', 'echo', 'never'],
    ]) {
      // The first refusal also drops it from the store; the second finds none.
      const r = await runCli(args, { env });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stdout).toBe('');
      if (args[0] === 'credential') {
        expect(r.stderr).toMatch(
          new RegExp(
            `^error: the grant for prod \\(${seeded.requestId}\\) was revoked by Lee Lead at \\d\\d:\\d\\d \\((just now|\\d+s ago)\\): INC-4211 is closed\\n` +
              'hint: request it again: jitctl request prod --reason "…"\\n$',
          ),
        );
      } else {
        expect(r.stderr).toContain('no active credential for prod');
      }
    }
    expect(await homeStore(h).get(credentialKey(b.url, 'prod'))).toBeUndefined();
  });

  it('status shows it revoked, by whom and why, and drops its credential', async () => {
    const { h, env } = home();
    const seeded = await seedCredential(homeStore(h), { role: 'prod', broker: b });
    await revoke(seeded.requestId, 'wrong cluster');
    const r = await runCli(['status'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`prod\\s+${seeded.requestId}\\s+revoked`));
    expect(r.stdout).toMatch(
      /revoked by Lee Lead at \d\d:\d\d \([^)]+\): wrong cluster; its credential was removed from the store/,
    );
    expect(await homeStore(h).get(credentialKey(b.url, 'prod'))).toBeUndefined();
    const json = await runCli(['status', '--json'], { env });
    expect(JSON.parse(json.stdout).credentials).toEqual([]);
  });
});

describe('a running command under a grant that is revoked', () => {
  it('is ended with everything it started within a second; jitctl says who and why, exit 3', async () => {
    const { h, env } = home();
    const seeded = await seedCredential(homeStore(h), { role: 'prod', broker: b });
    const d = h.dir;
    const run = spawnCli(
      [
        'exec',
        'prod',
        '--',
        'bash',
        '-c',
        `(sleep 300 & echo $! > ${d}/grandchild; wait) & echo $$ > ${d}/child; wait`,
      ],
      { env },
    );
    const pidOf = (name: string) =>
      waitFor(() => {
        const f = join(d, name);
        const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
        return text.endsWith('\n') ? Number(text) : undefined;
      }, name);
    const [child, grandchild] = await Promise.all([pidOf('child'), pidOf('grandchild')]);
    const revoked = Date.now();
    await revoke(seeded.requestId, 'the deploy is done');
    await waitFor(() => (gone(child) && gone(grandchild) ? true : undefined), 'the tree to end');
    expect(Date.now() - revoked).toBeLessThan(1_000);
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /jitctl: the grant for prod \(req_\w+\) was revoked by Lee Lead at \d\d:\d\d \([^)]+\): the deploy is done; sending SIGTERM to the command and everything it started\n/,
    );
    expect(r.stderr).toMatch(
      /error: the command was ended: the grant for prod \(req_\w+\) was revoked by Lee Lead/,
    );
    // Its use is in the audit log, ended by the revocation.
    const [ended] = await auditOf(seeded.requestId, 'command.ended');
    expect(ended).toMatchObject({ command: ['bash'], ended_by: 'revoked', signal: 'SIGTERM' });
  });

  it('keeps running with a warning when the role says on_revoke: warn', async () => {
    const { h, env } = home();
    const seeded = await seedCredential(homeStore(h), {
      role: 'warned',
      policyRole: 'warned',
      broker: b,
    });
    const flag = join(h.dir, 'go');
    const started = join(h.dir, 'started');
    const run = spawnCli(
      [
        'exec',
        'warned',
        '--',
        'sh',
        '-c',
        `touch ${started}; while [ ! -e ${flag} ]; do sleep 0.05; done; exit 7`,
      ],
      { env },
    );
    await waitFor(() => (existsSync(started) ? true : undefined), 'the command to start');
    await revoke(seeded.requestId, 'heads up');
    await run.waitForOutput('the command keeps running (the role says on_revoke: warn)');
    writeFileSync(flag, '');
    const r = await run.done;
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/was revoked by Lee Lead at .*: heads up\n/);
  });
});

describe('the role’s settings and the credential’s own lifetime', () => {
  it('kill_at_expiry in policy ends the command at the grant’s end without the flag', async () => {
    const { h, env } = home();
    await seedCredential(homeStore(h), {
      role: 'timed',
      policyRole: 'timed',
      validMs: 2_000,
      broker: b,
    });
    const r = await runCli(['exec', 'timed', '--', 'sleep', '30'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('error: the command was ended: the credential for timed expired');
  });

  it('a credential near its own end is replaced by a fresh one while the grant lasts', async () => {
    const { h, env } = home();
    const seeded = await seedCredential(homeStore(h), {
      role: 'short',
      policyRole: 'short',
      validMs: 10 * 60_000,
      broker: b,
    });
    // A 30 s credential inside a 10 minute grant: kubectl's plugin gets a fresh one each time
    // the stored one has less than a minute left.
    const r = await runCli(['credential', 'short', '--kube'], { env });
    expect(r.code, r.stderr).toBe(0);
    const { status } = JSON.parse(r.stdout) as {
      status: { token: string; expirationTimestamp: string };
    };
    expect(status.token).not.toBe(seeded.token);
    const left = Date.parse(status.expirationTimestamp) - Date.now();
    expect(left).toBeGreaterThan(20_000);
    expect(left).toBeLessThanOrEqual(30_000);
    const kept = decodeCredential(await homeStore(h).get(credentialKey(b.url, 'short')))!;
    expect(kept.token.reveal()).toBe(status.token);
    expect(kept.grantExpiresAt).toBe(seeded.grantExpiresAt);
    expect(await auditOf(seeded.requestId, 'credential.minted')).toHaveLength(2);
  });
});

describe('the broker out of reach', () => {
  it('hands over a credential it confirmed in the last 5 minutes, with a warning; else exit 69', async () => {
    const { h } = home();
    const other = await startCredentialBroker(POLICY);
    const seeded = await seedCredential(homeStore(h), { role: 'prod', broker: other });
    const env = fileStoreEnv(h, other.url);
    await other.close();
    const recent = await runCli(['credential', 'prod', '--json'], { env });
    expect(recent.code, recent.stderr).toBe(0);
    expect(JSON.parse(recent.stdout).token).toBe(seeded.token);
    expect(recent.stderr).toMatch(
      /^warning: cannot reach the broker at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) to confirm the grant for prod; using the credential it confirmed .* \(jitctl waits at most 5 minutes for a confirmation\)\n$/,
    );
    // Its last confirmation six minutes ago: refused.
    const store = homeStore(h);
    const key = credentialKey(other.url, 'prod');
    const record = decodeCredential(await store.get(key))!;
    await store.set(key, encodeCredential({ ...record, confirmedAt: Date.now() - 6 * 60_000 }));
    const stale = await runCli(['exec', 'prod', '--', 'echo', 'never'], { env });
    expect(stale.code).toBe(69);
    expect(stale.stdout).toBe('');
    expect(stale.stderr).toContain(
      'to confirm that the grant for prod is still active\nhint: the broker last confirmed it 6m ago',
    );
    expect(stale.stderr).not.toContain(seeded.token);
  });
});

describe('who ran what (issue 16)', () => {
  it('exec reports the command’s name, start, end and exit status', async () => {
    const { h, env } = home();
    const seeded = await seedCredential(homeStore(h), { role: 'prod', broker: b });
    const r = await runCli(['exec', 'prod', '--', 'sh', '-c', 'exit 5', 'password=hunter2'], {
      env,
    });
    expect(r.code).toBe(5);
    expect(r.stderr).toBe('');
    const [started] = await auditOf(seeded.requestId, 'command.started');
    const [ended] = await auditOf(seeded.requestId, 'command.ended');
    expect(started).toMatchObject({
      kind: 'exec',
      command: ['sh'],
      os_user: expect.any(String),
      host: expect.any(String),
      late: false,
    });
    expect(ended).toMatchObject({ use_id: started!.use_id, exit_code: 5, signal: null });
    const all = JSON.stringify(await rawSql(b.dbUrl, 'select data from audit_events'));
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain(seeded.token);
  });

  it('with the broker down at the end, the report is queued (0600) and a later exec sends it', async () => {
    const { h } = home();
    const other = await startCredentialBroker(POLICY);
    try {
      const seeded = await seedCredential(homeStore(h), { role: 'prod', broker: other });
      const env = fileStoreEnv(h, other.url);
      const flag = join(h.dir, 'go');
      const run = spawnCli(
        ['exec', 'prod', '--', 'sh', '-c', `while [ ! -e ${flag} ]; do sleep 0.05; done`],
        { env },
      );
      await until(
        async () => (await auditOfAt(other, seeded.requestId, 'command.started')).length > 0,
        'the start report',
      );
      // The broker goes away while the command runs; then the command ends.
      const port = new URL(other.url).port;
      const dbUrl = other.dbUrl;
      await other.broker.close();
      writeFileSync(flag, '');
      const r = await run.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(
        "jitctl: could not report this command's end to the broker (ECONNREFUSED); it is kept and sent by your next jitctl exec or shell\n",
      );
      const dir = join(h.env.XDG_STATE_HOME!, 'jitctl', 'uses');
      const files = readdirSync(dir);
      expect(files).toHaveLength(1);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, files[0]!)).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dir, files[0]!), 'utf8')).not.toContain(seeded.token);
      // status says a report waits.
      const status = await runCli(['status', '--offline'], { env });
      expect(status.stdout).toContain('1 report of commands run under a grant wait');
      // The broker is back (same database, same port); the next exec sends the queued end.
      const back = await startCredentialBrokerOn(port, dbUrl, other);
      try {
        const next = await runCli(['exec', 'prod', '--', 'true'], { env });
        expect(next.code, next.stderr).toBe(0);
        const ends = await auditOfAt(back, seeded.requestId, 'command.ended');
        expect(ends).toHaveLength(2);
        expect(ends.find((e) => e.late === true)).toMatchObject({ queued_at: expect.any(String) });
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        await back.close();
      }
    } finally {
      await other.close().catch(() => {});
    }
  });

  it('a role requiring reports: no report, no command', async () => {
    const { h } = home();
    const other = await startCredentialBroker(POLICY);
    await seedCredential(homeStore(h), { role: 'strict', policyRole: 'strict', broker: other });
    const env = fileStoreEnv(h, other.url);
    await other.close();
    const marker = join(h.dir, 'ran');
    const r = await runCli(['exec', 'strict', '--', 'touch', marker], { env });
    expect(r.code).toBe(69);
    expect(r.stderr).toContain(
      'the role strict requires each command to be reported to the broker before it runs',
    );
    expect(existsSync(marker)).toBe(false);
  });
});

/** The same broker started again on its port and database (a restart), for `other`'s issuer. */
async function startCredentialBrokerOn(
  port: string,
  dbUrl: string,
  was: TestBroker,
): Promise<TestBroker> {
  const { startTestBroker } = await import('../support/broker.js');
  return startTestBroker({
    policy: POLICY,
    dbUrl,
    issuer: was.issuer,
    settings: { listen: `127.0.0.1:${port}` },
  });
}

async function auditOfAt(at: TestBroker, id: string, type: string) {
  const rows = (await rawSql(
    at.dbUrl,
    `select data from audit_events where request_id = '${id}' and type = '${type}' order by seq`,
  )) as { data: string }[];
  return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

/** Polls an async condition (the audit log) until it holds. */
async function until(probe: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
