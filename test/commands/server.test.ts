import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigResponse } from '../../src/api/schemas.js';
import { POLICY, people } from '../server/helpers.js';
import { http } from '../support/broker.js';
import { runCli, spawnCli, testHome } from '../support/cli.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';

/** `jitctl server` as operators run it: the real binary, flags, variables, config files, signals. */

let issuer: TestIssuer;
let dir: string;
let policyFile: string;
const home = testHome();

beforeAll(async () => {
  issuer = await startTestIssuer();
  dir = mkdtempSync(join(tmpdir(), 'jitctl-server-cmd-'));
  policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
});
afterAll(async () => {
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
  home.cleanup();
});

const URL_LINE = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

function baseArgs(db: string): string[] {
  return [
    'server',
    '--listen',
    '127.0.0.1:0',
    '--db',
    `sqlite:${join(dir, db)}`,
    '--policy',
    policyFile,
    '--oidc-issuer',
    issuer.issuer,
    '--oidc-client-id',
    'jitctl-cli',
  ];
}

describe('jitctl server', () => {
  it('serves the API, logs JSON to stdout, and shuts down gracefully on SIGTERM', async () => {
    const run = spawnCli(baseArgs('a.db'), { env: home.env, cwd: dir });
    await run.waitForOutput(URL_LINE);
    const url = URL_LINE.exec(run.stderr())![1]!;
    expect((await http(url, 'GET', '/healthz')).status).toBe(200);
    const config = await http<ConfigResponse>(url, 'GET', '/v1/config');
    expect(config.body).toMatchObject({ issuer: issuer.issuer, client_id: 'jitctl-cli' });
    const token = await issuer.token(people.alice);
    const created = await http<{ id: string }>(url, 'POST', '/v1/requests', {
      token,
      body: { role: 'two-person' },
    });
    expect(created.status).toBe(201);

    // A long poll in flight when SIGTERM arrives is answered, then the process exits 0.
    const waiting = http(url, 'GET', `/v1/requests/${created.body.id}?wait=60s`, { token });
    await new Promise((r) => setTimeout(r, 300));
    run.child.kill('SIGTERM');
    const answer = await waiting;
    expect(answer.status).toBe(200);
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('shutting down');
    const logs = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    expect(logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['broker listening', 'request', 'broker stopped']),
    );
    expect(result.stdout).not.toContain(token.split('.')[2]);
  });

  it('takes settings from JITCTL_SERVER_* variables and a config file, flags first', async () => {
    const configFile = join(dir, 'jitctl.yaml');
    writeFileSync(
      configFile,
      [
        'listen: 127.0.0.1:1',
        `db: sqlite:./from-file.db`,
        `policy: ${policyFile}`,
        `oidc_issuer: ${issuer.issuer}`,
        'oidc_client_id: from-file',
        'auditors: [auditors, security]',
        'log_level: warn',
      ].join('\n'),
    );
    const run = spawnCli(['server', '--config', configFile, '--listen', '127.0.0.1:0'], {
      env: { ...home.env, JITCTL_SERVER_OIDC_CLIENT_ID: 'from-env' },
      cwd: home.dir,
    });
    try {
      await run.waitForOutput(URL_LINE);
      expect(run.stderr()).toContain(`sqlite:${join(dir, 'from-file.db')}`);
      const url = URL_LINE.exec(run.stderr())![1]!;
      const config = await http<ConfigResponse>(url, 'GET', '/v1/config');
      expect(config.body.client_id).toBe('from-env');
      // log_level warn from the file: no info lines on stdout.
      expect(run.stdout()).toBe('');
    } finally {
      run.child.kill('SIGINT');
      expect((await run.done).code).toBe(0);
    }
  });

  it('refuses an invalid policy with file, line, path and reason', async () => {
    const bad = join(dir, 'bad-policy.yaml');
    writeFileSync(
      bad,
      'roles:\n  prod:\n    requesters: [group:devs]\n    aprovers: [group:leads]\n',
    );
    const args = baseArgs('b.db');
    args[args.indexOf(policyFile)] = bad;
    const r = await runCli(args, { env: home.env, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${bad.replace(/[.]/g, '\\.')}:4:\\d+: roles\\.prod`));
    expect(r.stderr).toContain('approvers');
  });

  it.each([
    [['server'], /needs policy .*oidc_issuer .*oidc_client_id/, undefined],
    [['server', '--listen', 'localhost'], /--listen: "localhost" is not HOST:PORT/, undefined],
    [['server', '--listen', '127.0.0.1:99999'], /--listen: port 99999 is over 65535/, undefined],
    [['server', '--db', 'mysql://x'], /--db: .*is not a database URL/, undefined],
    [['server', '--oidc-issuer', 'http://idp.example.com'], /must use https/, undefined],
    [['server', '--config', '/nonexistent/jitctl.yaml'], /cannot read/, undefined],
    [['server'], /unknown environment variable JITCTL_SERVER_LISTN/, { JITCTL_SERVER_LISTN: '1' }],
    [
      ['server'],
      /JITCTL_SERVER_REVIEW_STEP_UP\.max_age/,
      { JITCTL_SERVER_REVIEW_STEP_UP: '{"acr":"mfa","max_age":"5x"}' },
    ],
    [['server', '--data-dir', '/tmp/x'], /only applies with --dev/, undefined],
  ] as const)(
    'refuses bad settings (%j) with exit 2 naming the setting',
    async (args, message, env) => {
      const r = await runCli([...args], { env: { ...home.env, ...env }, cwd: dir });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    },
  );

  it('refuses a policy webhook without its signing secret, naming the setting, and starts with it', async () => {
    const withHook = join(dir, 'notify-policy.yaml');
    writeFileSync(
      withHook,
      `${POLICY}\nnotify:\n  - webhook: https://hooks.example.com/T0/s3cr3t\n`,
    );
    const args = baseArgs('n.db');
    args[args.indexOf(policyFile)] = withHook;
    const refused = await runCli(args, { env: home.env, cwd: dir });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(
      'error: notify[0]: webhooks are signed (Standard Webhooks), and no secret is configured for it',
    );
    expect(refused.stderr).toContain(
      'hint: set webhook_secrets: { default: env:JITCTL_WEBHOOK_SECRET }',
    );
    expect(refused.stderr).not.toContain('s3cr3t');

    const secret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    const run = spawnCli(args, {
      env: {
        ...home.env,
        JITCTL_SERVER_WEBHOOK_SECRETS: '{"default":"env:JITCTL_WEBHOOK_SECRET"}',
        JITCTL_WEBHOOK_SECRET: secret,
      },
      cwd: dir,
    });
    try {
      await run.waitForOutput(URL_LINE);
    } finally {
      run.child.kill('SIGTERM');
    }
    const done = await run.done;
    expect(done.code).toBe(0);
    expect(done.stdout + done.stderr).not.toContain(secret.slice(6));
    expect(done.stdout).toContain('"webhooks":["https://hooks.example.com (standard)"]');
  });

  it('names the misspelt key of a config file', async () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'auditor: [security]\n');
    const r = await runCli(['server', '--config', file], { env: home.env, cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown setting "auditor"');
    expect(r.stderr).toContain('did you mean `auditors`?');
  });

  it('says so when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const args = baseArgs('c.db');
      args[2] = `127.0.0.1:${port}`;
      const r = await runCli(args, { env: home.env, cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}: the address is in use`);
    } finally {
      blocker.close();
    }
  });
});

describe('jitctl server --dev', () => {
  it('starts the built-in identity provider and prints the banner', async () => {
    const data = join(dir, 'dev-data');
    const run = spawnCli(['server', '--dev', '--listen', '127.0.0.1:0', '--data-dir', data], {
      env: home.env,
      cwd: dir,
    });
    try {
      await run.waitForOutput('jitctl login --server', 60_000);
      const err = run.stderr();
      expect(err).toMatch(/DEVELOPMENT MODE/);
      for (const user of ['alice', 'bob', 'lee', 'ada'])
        expect(err).toMatch(new RegExp(`^    ${user} `, 'm'));
      const url = /broker +(http:\/\/127\.0\.0\.1:\d+)/.exec(err)![1]!;
      const config = await http<ConfigResponse>(url, 'GET', '/v1/config');
      expect(config.status, config.text).toBe(200);
      expect(config.body).toMatchObject({ issuer: `${url}/idp`, device_flow: true });
      const discovery = await http<{ issuer: string }>(
        url,
        'GET',
        '/idp/.well-known/openid-configuration',
      );
      expect(discovery.body.issuer).toBe(`${url}/idp`);
      expect(err).toContain(`sqlite:${join(data, 'jitctl.db')}`);
    } finally {
      run.child.kill('SIGTERM');
      expect((await run.done).code).toBe(0);
    }
  });
});
