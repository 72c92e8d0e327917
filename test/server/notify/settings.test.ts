import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigInput, loadServerConfig } from '../../../src/server/config.js';
import { openChannels } from '../../../src/server/notify/channels.js';
import { parsePolicy } from '../../../src/server/policy/index.js';
import { startTestBroker } from '../../support/broker.js';
import { startTestIssuer } from '../../support/test-issuer.js';
import { POLICY } from '../helpers.js';

/**
 * The broker's notification settings: what they accept, an error naming the key for each bad
 * value (never quoting a secret or a webhook URL), and the start-up checks that a signed webhook
 * has its secret and an email route has an SMTP relay.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-notify-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
const REQUIRED = {
  policy: 'policy.yaml',
  oidc_issuer: 'https://idp.example.com/',
  oidc_client_id: 'jitctl',
};

const load = (input: Partial<ConfigInput>) =>
  loadServerConfig({ flags: REQUIRED, env: {}, cwd: dir, ...input });

function fromFile(yaml: string) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return load({ configFile: file });
}

async function refused(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('notification settings', () => {
  it('has defaults: no secrets, no SMTP, no security contacts, a 5-minute reminder, 1 hour of retries', async () => {
    expect((await load({})).notifications).toEqual({
      webhookSecrets: {},
      smtp: null,
      securityContacts: [],
      reminderBeforeMs: 300_000,
      giveUpAfterMs: 3_600_000,
    });
  });

  it('reads every key from the config file', async () => {
    const c = await fromFile(
      [
        'webhook_secrets:',
        '  default: env:JIT_WEBHOOK_SECRET',
        '  chatops: file:secrets/chatops',
        `  literal: ${SECRET}`,
        'smtp:',
        '  host: smtp.example.com',
        '  from: "jitctl <jit@example.com>"',
        '  user: jitctl',
        '  password: env:SMTP_PASSWORD',
        'security_contacts:',
        '  - security@example.com',
        '  - { webhook: https://hooks.slack.com/services/T/B/secret, format: slack }',
        'expiry_reminder: 10m',
        'notify_give_up_after: 6h',
        '',
      ].join('\n'),
    );
    const n = c.notifications;
    expect(n.webhookSecrets.default).toEqual({ kind: 'env', name: 'JIT_WEBHOOK_SECRET' });
    expect(n.webhookSecrets.chatops).toEqual({ kind: 'file', path: join(dir, 'secrets/chatops') });
    expect(n.webhookSecrets.literal!.kind).toBe('value');
    // A literal secret is held so that printing the settings never shows it.
    expect(JSON.stringify(n)).not.toContain(SECRET.slice(6));
    expect(n.smtp).toEqual({
      host: 'smtp.example.com',
      port: 587,
      tls: 'starttls',
      from: 'jitctl <jit@example.com>',
      user: 'jitctl',
      password: { kind: 'env', name: 'SMTP_PASSWORD' },
    });
    expect(n.securityContacts).toEqual([
      { kind: 'email', address: 'security@example.com' },
      {
        kind: 'webhook',
        webhook: 'https://hooks.slack.com/services/T/B/secret',
        format: 'slack',
        secret: null,
      },
    ]);
    expect(n.reminderBeforeMs).toBe(600_000);
    expect(n.giveUpAfterMs).toBe(6 * 3_600_000);
  });

  it('reads JSON from JITCTL_SERVER_* variables, and a list of addresses for security contacts', async () => {
    const c = await load({
      env: {
        JITCTL_SERVER_WEBHOOK_SECRETS: '{"default":"env:S"}',
        JITCTL_SERVER_SMTP: '{"host":"127.0.0.1","port":2525,"tls":"none","from":"j@example.com"}',
        JITCTL_SERVER_SECURITY_CONTACTS: 'sec@example.com, soc@example.com',
        JITCTL_SERVER_EXPIRY_REMINDER: 'off',
      },
    });
    expect(c.notifications.smtp).toMatchObject({ host: '127.0.0.1', port: 2525, tls: 'none' });
    expect(c.notifications.securityContacts.map((x) => x.kind)).toEqual(['email', 'email']);
    expect(c.notifications.reminderBeforeMs).toBeNull();
  });

  it.each([
    [
      'webhook_secrets: { default: whsec_c2hvcnQ= }',
      'webhook_secrets.default: is not a Standard Webhooks secret (whsec_ followed by base64 of 24 to 64 bytes)',
      'whsec_c2hvcnQ',
    ],
    [
      'webhook_secrets: { default: hunter2-plain-text }',
      'webhook_secrets.default: must be a whsec_… secret or a reference to one',
      'hunter2',
    ],
    [
      'webhook_secrets: { "bad name": env:X }',
      'webhook_secrets.bad name: is not a secret name',
      undefined,
    ],
    [
      'webhook_secrets: [env:X]',
      'webhook_secrets: must be a mapping of names to secrets',
      undefined,
    ],
    [
      'webhook_secrets: { default: "env:1X" }',
      'env:1X is not an environment variable name',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, user: j, password: pa55w0rd-literal }',
      'smtp.password: must not hold the password itself',
      'pa55w0rd',
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, tls: none }',
      'smtp.tls: none sends mail and the password in clear: only for a relay on this machine',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, tls: ssl }',
      'smtp.tls: must be starttls',
      undefined,
    ],
    [
      'smtp: { from: j@example.com }',
      'smtp.host: must be the SMTP relay host name or address',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: "j@example.com\\r\\nBcc: x@evil.example" }',
      'smtp.from: must be an address such as jit@example.com',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, port: 70000 }',
      'smtp.port: must be a port number',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, user: j }',
      'smtp: a user needs a password',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, password: env:P }',
      'smtp: a password needs a user',
      undefined,
    ],
    [
      'smtp: { host: smtp.example.com, from: j@example.com, pass: env:P }',
      'smtp.pass: unknown key',
      undefined,
    ],
    [
      'security_contacts: [not-an-address]',
      'security_contacts[0]: is not an email address',
      undefined,
    ],
    [
      'security_contacts: [{ webhook: "http://hooks.example.com/T/s3cr3t" }]',
      'security_contacts[0].webhook: must be https:// (http:// only on this machine)',
      's3cr3t',
    ],
    [
      `security_contacts: [{ webhook: "https://h.example.com/x", secret: ${SECRET} }]`,
      'security_contacts[0].secret: must name a secret of webhook_secrets (not the secret)',
      SECRET.slice(6, 20),
    ],
    [
      'security_contacts: [a@example.com, A@example.com]',
      'security_contacts[1]: is listed twice',
      undefined,
    ],
    ['expiry_reminder: 30s', 'expiry_reminder: must be between 1m and 1d', undefined],
    ['notify_give_up_after: 30d', 'notify_give_up_after: must be between 1m and 7d', undefined],
    ['notify_give_up_after: 60', 'notify_give_up_after:', undefined],
  ])('refuses %s', async (yaml, message, leak) => {
    const err = await refused(fromFile(`${yaml}\n`));
    expect(err.message).toContain(message);
    if (leak) expect(`${err.message} ${err.hint ?? ''}`).not.toContain(leak);
  });
});

describe('start-up checks of the notification routes', () => {
  const policyWith = (notify: string) =>
    parsePolicy(`${POLICY}\nnotify:\n${notify}`, 'policy.yaml').notify;
  const base = async (yaml = '') => (await fromFile(`${yaml}\n`)).notifications;
  const open = async (notify: string, yaml = '', env: Record<string, string> = {}) =>
    openChannels(policyWith(notify), await base(yaml), {
      env,
      mailDomain: 'jit.example.com',
      timeoutMs: 1000,
    });

  it('a standard (signed) webhook needs a secret; a Slack one may go without', async () => {
    const err = await refused(open('  - webhook: https://hooks.example.com/s3cr3t\n'));
    expect(err.message).toBe(
      'notify[0]: webhooks are signed (Standard Webhooks), and no secret is configured for it',
    );
    expect(err.hint).toContain('webhook_secrets: { default: env:JITCTL_WEBHOOK_SECRET }');
    expect(err.hint).toContain('openssl rand -base64 32');
    expect(`${err.message}${err.hint}`).not.toContain('s3cr3t');
    const slack = await open('  - webhook: https://hooks.example.com/s3cr3t\n    format: slack\n');
    expect([...slack.webhooks.values()][0]).toMatchObject({ format: 'slack', secret: null });
  });

  it('names the secret that is missing, the variable that is unset, the file that cannot be read', async () => {
    const hook = '  - webhook: https://hooks.example.com/x\n    secret: chatops\n';
    expect((await refused(open(hook, 'webhook_secrets: { default: env:S }'))).message).toBe(
      `notify[0]: secret "chatops" is not in the broker's webhook_secrets`,
    );
    expect(
      (await refused(open(hook, 'webhook_secrets: { chatops: env:CHATOPS_SECRET }'))).message,
    ).toBe('webhook_secrets.chatops: the environment variable CHATOPS_SECRET is not set');
    expect(
      (await refused(open(hook, `webhook_secrets: { chatops: "file:${join(dir, 'missing')}" }`)))
        .message,
    ).toBe(`webhook_secrets.chatops: cannot read ${join(dir, 'missing')}: ENOENT`);
    const bad = join(dir, 'bad-secret');
    writeFileSync(bad, 'not-a-whsec-secret\n');
    const err = await refused(open(hook, `webhook_secrets: { chatops: "file:${bad}" }`));
    expect(err.message).toContain('webhook_secrets.chatops: is not a Standard Webhooks secret');
    expect(err.message).not.toContain('not-a-whsec');
    const ok = await open(hook, 'webhook_secrets: { chatops: env:CHATOPS_SECRET }', {
      CHATOPS_SECRET: SECRET,
    });
    expect([...ok.webhooks.values()][0]!.secret!.reveal()).toBe(SECRET);
  });

  it('an email route or an email security contact needs smtp, and the SMTP password variable must be set', async () => {
    expect((await refused(open('  - email: approvers\n'))).message).toBe(
      "the policy's notify[0] sends email, and the broker has no smtp setting",
    );
    expect(
      (
        await refused(
          openChannels([], await base('security_contacts: [sec@example.com]'), {
            env: {},
            mailDomain: 'x',
            timeoutMs: 1,
          }),
        )
      ).message,
    ).toBe('security_contacts sends email, and the broker has no smtp setting');
    const smtp =
      'smtp: { host: smtp.example.com, from: j@example.com, user: j, password: env:SMTP_PASSWORD }';
    expect((await refused(open('  - email: approvers\n', smtp))).message).toBe(
      'smtp.password: the environment variable SMTP_PASSWORD is not set',
    );
    const channels = await open('  - email: approvers\n', smtp, { SMTP_PASSWORD: 'pw' });
    expect(channels.mailer).not.toBeNull();
    channels.mailer!.close();
  });

  it('the broker refuses to start, before opening its port, when a webhook has no secret', async () => {
    const issuer = await startTestIssuer();
    const err = await startTestBroker({
      policy: `${POLICY}\nnotify:\n  - webhook: http://127.0.0.1:9/s3cr3t\n`,
      issuer,
    })
      .then(
        () => undefined,
        (e: unknown) => e as ConfigError,
      )
      .finally(() => issuer.close());
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toContain('notify[0]: webhooks are signed');
  });
});
