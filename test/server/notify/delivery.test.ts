import { afterEach, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../../src/api/schemas.js';
import type { NotifyTuning } from '../../../src/server/notify/worker.js';
import { http, rawSql, startTestBroker, type TestBroker } from '../../support/broker.js';
import {
  type ReceivedHook,
  SECRET_PATH,
  type SmtpSink,
  smtpSink,
  webhookReceiver,
} from '../../support/receivers.js';
import { actor, file, POLICY, people } from '../helpers.js';

/**
 * Notifications end to end: the real broker, a real identity provider, real HTTP receivers that
 * verify Standard Webhooks signatures with the standardwebhooks library, and a real SMTP server.
 */

const SECRET = `whsec_${Buffer.alloc(32, 0x5a).toString('base64')}`;
const SMTP_PASSWORD = 'smtp-pw-4c1d-never-logged';
/** Fast retries; what is asserted never depends on how fast. */
const TUNING: NotifyTuning = {
  pollIntervalMs: 50,
  backoffMs: 20,
  maxBackoffMs: 200,
  timeoutMs: 5_000,
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function receiver(opts: Parameters<typeof webhookReceiver>[0] = {}) {
  const r = await webhookReceiver({ secret: SECRET, ...opts });
  cleanups.push(() => r.close());
  return r;
}

async function sink(): Promise<SmtpSink> {
  const s = await smtpSink({ user: 'jitctl', password: SMTP_PASSWORD });
  cleanups.push(() => s.close());
  return s;
}

async function broker(opts: {
  notify: string;
  smtp?: SmtpSink;
  settings?: Record<string, string>;
  tuning?: NotifyTuning;
  dialect?: 'sqlite' | 'postgres';
  dbUrl?: string;
  issuer?: TestBroker['issuer'];
  clock?: TestBroker['clock'];
  keep?: boolean;
}): Promise<TestBroker> {
  const b = await startTestBroker({
    policy: `${POLICY}\nnotify:\n${opts.notify}`,
    ...(opts.dialect ? { dialect: opts.dialect } : {}),
    ...(opts.dbUrl ? { dbUrl: opts.dbUrl } : {}),
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    settings: {
      webhook_secrets: JSON.stringify({ default: 'env:JIT_WEBHOOK_SECRET' }),
      ...(opts.smtp
        ? {
            smtp: JSON.stringify({
              host: '127.0.0.1',
              port: opts.smtp.port,
              tls: 'none',
              from: 'jitctl <jit@example.com>',
              user: 'jitctl',
              password: 'env:JIT_SMTP_PASSWORD',
            }),
          }
        : {}),
      ...opts.settings,
    },
    start: {
      env: { JIT_WEBHOOK_SECRET: SECRET, JIT_SMTP_PASSWORD: SMTP_PASSWORD },
      notify: { ...TUNING, ...opts.tuning },
    },
  });
  if (!opts.keep) cleanups.push(() => b.close());
  return b;
}

/** A Block Kit block, as far as the tests look. */
type Block = { type: string; text?: unknown; fields?: unknown[]; elements?: unknown[] };

const ofType = (type: string) => (r: ReceivedHook[]) => r.some((h) => h.body.type === type);
const typesOf = (r: ReceivedHook[]) => r.map((h) => h.body.type);

/** Signs a person in once, so the broker's people directory knows them. */
async function signIn(b: TestBroker, person: Parameters<typeof actor>[1]) {
  expect((await actor(b, person).get('/v1/me')).status).toBe(200);
  await b.broker.people.flush();
}

describe('signed webhooks, Slack messages and email', () => {
  it('a new request reaches a verified webhook, a Slack channel and the approvers the broker has seen', async () => {
    const standard = await receiver();
    const slack = await receiver();
    const smtp = await sink();
    const b = await broker({
      smtp,
      notify:
        `  - webhook: ${standard.url}\n` +
        `  - webhook: ${slack.url.replace(SECRET_PATH, '/slack')}\n    format: slack\n    roles: [prod-deploy]\n` +
        '  - email: [approvers, requester]\n',
    });
    // Lee signs in (the directory learns lee@example.com, verified); Lin's email is unverified.
    await signIn(b, people.lee);
    await signIn(b, { ...people.lin, email_verified: false });
    const alice = actor(b, people.alice);
    const req = await file(alice, {
      role: 'prod-deploy',
      reason: 'hotfix INC-4211',
      ticket: 'INC-4211',
    });
    const link = `${b.broker.publicUrl}/ui/requests/${req.id}`;

    const [created] = await standard.until(ofType('request.created'));
    expect(created!.verified).toBe(true);
    expect(created!.headers['webhook-id']).toMatch(/^msg_[A-Za-z0-9_-]{22}$/);
    expect(created!.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(Number(created!.headers['webhook-timestamp'])).toBeCloseTo(Date.now() / 1000, -2);
    expect(created!.body).toEqual({
      event_id: created!.headers['webhook-id'],
      type: 'request.created',
      priority: 'normal',
      request_id: req.id,
      role: 'prod-deploy',
      requester: 'Alice',
      duration: '15m',
      reason: 'hotfix INC-4211',
      ticket: 'INC-4211',
      reviewer: null,
      decision: null,
      comment: null,
      at: req.created_at,
      expires_at: null,
      link,
      text: `Alice requests prod-deploy for 15m: hotfix INC-4211 [INC-4211] — ${req.id}`,
    });

    const [chat] = await slack.until((r) => r.length === 1);
    // Slack verifies nothing, but the signature is there for anything that does.
    expect(chat!.verified).toBe(true);
    expect(Object.keys(chat!.body).sort()).toEqual(['blocks', 'text']);
    expect(chat!.body.text).toBe(
      `Alice requests prod-deploy for 15m: hotfix INC-4211 [INC-4211] — ${req.id}`,
    );
    const blocks = chat!.body.blocks as Block[];
    expect(blocks.map((x) => x.type)).toEqual(['section', 'section', 'actions', 'context']);
    expect(blocks[0]!.text).toEqual({
      type: 'mrkdwn',
      text: '*Alice requests prod-deploy for 15m: hotfix INC-4211 [INC-4211]*',
    });
    expect(blocks[1]!.fields).toEqual([
      { type: 'mrkdwn', text: '*Role*\nprod-deploy' },
      { type: 'mrkdwn', text: '*Requester*\nAlice' },
      { type: 'mrkdwn', text: '*Duration*\n15m' },
      { type: 'mrkdwn', text: '*Ticket*\nINC-4211' },
      { type: 'mrkdwn', text: '*Reason*\nhotfix INC-4211' },
    ]);
    expect(blocks[2]!.elements).toEqual([
      {
        type: 'button',
        action_id: 'review',
        text: { type: 'plain_text', text: 'Review' },
        url: link,
        style: 'primary',
      },
    ]);

    // Lee (seen, verified) is asked; Lin (unverified email) and Alice (the requester) are not.
    const mails = await smtp.until((m) => m.length >= 1);
    expect(mails.map((m) => m.to)).toEqual([['lee@example.com']]);
    const mail = mails[0]!;
    expect(smtp.logins).toEqual([{ username: 'jitctl', password: SMTP_PASSWORD }]);
    expect(mail.headers.get('from')).toBe('jitctl <jit@example.com>');
    expect(mail.subject).toBe('Alice requests prod-deploy for 15m: hotfix INC-4211 [INC-4211]');
    expect(mail.headers.get('message-id')).toMatch(/^<msg_[A-Za-z0-9_-]{22}@/);
    expect(mail.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail.text).toContain(`Review the request: ${link}`);
    expect(mail.text).toContain('Reason:    hotfix INC-4211');
    expect(mail.text).toContain('You get this because you may approve requests for prod-deploy.');
    expect(mail.html).toContain(`<a href="${link}"`);
    expect(mail.html).toContain('<td>hotfix INC-4211</td>');

    // The decision reaches the requester, by name and with the comment.
    const approve = await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
      comment: 'ship it',
    });
    expect(approve.status).toBe(200);
    await smtp.until((m) => m.some((x) => x.to[0] === 'alice@example.com'));
    const toAlice = smtp.mails.find((x) => x.to[0] === 'alice@example.com')!;
    expect(toAlice.subject).toBe("Lee approved Alice's request for prod-deploy (15m): ship it");
    expect(toAlice.text).toContain('By:        Lee');
    expect(toAlice.text).toContain('Comment:   ship it');
    expect(toAlice.text).toContain(`Open the request: ${link}`);
    await standard.until(ofType('request.approved'));
    expect(typesOf(standard.received)).toEqual([
      'request.created',
      'review.recorded',
      'request.approved',
    ]);
    expect(standard.received.every((h) => h.verified)).toBe(true);
    const approved = standard.received[2]!.body;
    expect(approved).toMatchObject({ reviewer: 'Lee', decision: 'approve', comment: 'ship it' });
    expect(typeof approved.expires_at).toBe('string');

    const metrics = (await http(b.url, 'GET', '/metrics')).text;
    expect(metrics).toMatch(
      /jitctl_notifications_sent_total\{channel="email",event="request.created"\} 1/,
    );
    expect(metrics).toMatch(/jitctl_notification_queue_depth \d+/);
    // Nothing secret in the logs: not the signing secret, the SMTP password or a webhook's path.
    const logs = b.logs();
    expect(logs).not.toContain(SECRET.slice(6, 30));
    expect(logs).not.toContain(SMTP_PASSWORD);
    expect(logs).not.toContain('s3cr3t-path');
    expect(logs).not.toContain('/slack');
  });

  it('escapes what requesters write: <!channel> and <script> arrive as text', async () => {
    const slack = await receiver();
    const standard = await receiver();
    const smtp = await sink();
    const b = await broker({
      smtp,
      notify:
        `  - webhook: ${slack.url}\n    format: slack\n` +
        `  - webhook: ${standard.url.replace(SECRET_PATH, '/std')}\n` +
        '  - email: [lee@example.com]\n',
    });
    const reason = '<!channel> deploy <script>alert(1)</script> & <https://evil.example|click>';
    const req = await file(actor(b, people.alice), {
      role: 'prod-deploy',
      reason,
      ticket: '<@U0123>',
    });
    const [chat] = await slack.until((r) => r.length === 1);
    expect(chat!.raw).not.toMatch(/<!channel>|<script>|<https:\/\/evil|<@U0123>/);
    const escaped =
      '&lt;!channel&gt; deploy &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;https://evil.example|click&gt;';
    expect(chat!.body.text).toContain(escaped);
    const blocks = chat!.body.blocks as Block[];
    expect(blocks[1]!.fields).toContainEqual({ type: 'mrkdwn', text: `*Reason*\n${escaped}` });
    expect(blocks[1]!.fields).toContainEqual({ type: 'mrkdwn', text: '*Ticket*\n&lt;@U0123&gt;' });

    // The JSON event carries the reason as data, and its chat line escaped.
    const [event] = await standard.until((r) => r.length === 1);
    expect(event!.body.reason).toBe(reason);
    expect(event!.body.text).toContain(escaped);

    const [mail] = await smtp.until((m) => m.length === 1);
    expect(mail!.html).not.toContain('<script>');
    expect(mail!.html).not.toContain('<https://evil');
    expect(mail!.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(mail!.text).toContain(reason);
    expect(mail!.subject).toContain('<!channel>');
    expect(mail!.headers.get('bcc')).toBeUndefined();
    expect(req.reason).toBe(reason);
  });

  it('a newline in a reason cannot add a mail header or a Slack line of its own', async () => {
    const slack = await receiver();
    const smtp = await sink();
    const b = await broker({
      smtp,
      notify: `  - webhook: ${slack.url}\n    format: slack\n  - email: [lee@example.com]\n`,
    });
    await file(actor(b, people.alice), {
      role: 'prod-deploy',
      reason: 'x\r\nBcc: mallory@example.com\r\n\r\n\u202eevil',
    });
    const [mail] = await smtp.until((m) => m.length === 1);
    expect(mail!.to).toEqual(['lee@example.com']);
    expect(mail!.headers.has('bcc')).toBe(false);
    expect(mail!.subject).toContain('x\\r\\nBcc: mallory@example.com\\r\\n\\r\\n\\u202eevil');
    const [chat] = await slack.until((r) => r.length === 1);
    expect(chat!.body.text).toContain('\\r\\nBcc');
    expect(chat!.body.text).not.toContain('\u202e');
  });
});

describe('reliable delivery', () => {
  it('a receiver that fails three times then succeeds gets one event per webhook-id, same id on every attempt', async () => {
    const hook = await receiver({
      respond: (res, n) => res.writeHead(n <= 3 ? (n === 2 ? 429 : 503) : 200).end(),
    });
    const b = await broker({
      notify: `  - webhook: ${hook.url}\n    events: [request.created]\n`,
    });
    const req = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'retry' });
    await hook.until((r) => r.some((h) => h.status === 200));
    const ids = hook.received.map((h) => h.headers['webhook-id']);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(1);
    expect(hook.received.every((h) => h.verified)).toBe(true);
    expect(hook.received.every((h) => h.body.event_id === ids[0])).toBe(true);
    expect(hook.received.map((h) => h.status)).toEqual([503, 429, 503, 200]);

    const row = async () =>
      (
        (await rawSql(
          b.dbUrl,
          `select state, attempts from notification_outbox where request_id = '${req.id}'`,
        )) as { state: string; attempts: number }[]
      )[0];
    await expect.poll(row, { timeout: 10_000 }).toEqual({ state: 'sent', attempts: 4 });
    const metrics = (await http(b.url, 'GET', '/metrics')).text;
    expect(metrics).toContain('jitctl_notifications_retried_total{channel="webhook"} 3');
    expect(metrics).toContain(
      'jitctl_notifications_sent_total{channel="webhook",event="request.created"} 1',
    );
    // One warning per failed attempt, naming the origin only.
    const lines = b
      .logs()
      .split('\n')
      .filter((l) => l.includes('notification delivery failed; will retry'));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain(`"target":"${new URL(hook.url).origin}"`);
    expect(lines[0]).toContain('"error":"http 503"');
    expect(b.logs()).not.toContain('s3cr3t-path');
  });

  it('honours Retry-After: no attempt before the time the receiver asked for', async () => {
    const hook = await receiver({
      respond: (res, n) =>
        n === 1 ? res.writeHead(429, { 'retry-after': '120' }).end() : res.writeHead(200).end(),
    });
    const b = await broker({ notify: `  - webhook: ${hook.url}\n` });
    const req = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'later' });
    await hook.until((r) => r.length === 1);
    const due = async () =>
      (
        (await rawSql(
          b.dbUrl,
          `select attempts, next_attempt_at from notification_outbox where request_id = '${req.id}'`,
        )) as { attempts: number; next_attempt_at: number }[]
      )[0]!;
    await expect.poll(async () => (await due()).attempts, { timeout: 10_000 }).toBe(1);
    const wait = Number((await due()).next_attempt_at) - b.clock.now();
    expect(wait).toBeGreaterThan(115_000);
    expect(wait).toBeLessThanOrEqual(120_000);
    b.clock.advance(121_000);
    await hook.until((r) => r.length === 2);
    expect(hook.received[1]!.headers['webhook-id']).toBe(hook.received[0]!.headers['webhook-id']);
  });

  it('gives up after notify_give_up_after, with a log line and a metric', async () => {
    const hook = await receiver({ respond: (res) => res.writeHead(500).end() });
    const b = await broker({
      notify: `  - webhook: ${hook.url}\n    events: [request.created]\n`,
      settings: { notify_give_up_after: '2m' },
      tuning: { backoffMs: 30_000, maxBackoffMs: 30_000 },
    });
    const req = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'doomed' });
    await hook.until((r) => r.length === 1);
    const row = async () =>
      (
        (await rawSql(
          b.dbUrl,
          `select state, attempts, claimed_by, last_error from notification_outbox where request_id = '${req.id}'`,
        )) as { state: string; attempts: number; claimed_by: string | null; last_error: string }[]
      )[0]!;
    // Settled: every attempt the receiver saw is recorded, and nobody holds the row.
    const settled = async () => {
      const r = await row();
      return (
        r.state !== 'pending' || (r.attempts === hook.received.length && r.claimed_by === null)
      );
    };
    // Retries every 15–30 s of the broker's clock until two minutes have passed, then gives up.
    for (let i = 0; i < 10 && (await row()).state === 'pending'; i++) {
      await expect.poll(settled, { timeout: 10_000 }).toBe(true);
      const before = hook.received.length;
      b.clock.advance(31_000);
      await expect
        .poll(async () => hook.received.length > before || (await row()).state !== 'pending', {
          timeout: 10_000,
        })
        .toBe(true);
    }
    const last = await row();
    expect({ state: last.state, last_error: last.last_error }).toEqual({
      state: 'failed',
      last_error: 'http 500',
    });
    expect(hook.received.length).toBeGreaterThanOrEqual(4);
    expect(hook.received.length).toBeLessThanOrEqual(9);
    const giveUp = b
      .logs()
      .split('\n')
      .filter((l) => l.includes('notification delivery failed; giving up'));
    expect(giveUp).toHaveLength(1);
    expect(giveUp[0]).toContain(`"request_id":"${req.id}"`);
    expect((await http(b.url, 'GET', '/metrics')).text).toContain(
      'jitctl_notifications_failed_total{channel="webhook"} 1',
    );
  });

  it('a receiver that hangs never delays a transition, nor the other receivers', async () => {
    const hanging = await receiver({
      respond: () => {
        /* never answers */
      },
    });
    const healthy = await receiver();
    const b = await broker({
      notify: `  - webhook: ${hanging.url}\n  - webhook: ${healthy.url.replace(SECRET_PATH, '/ok')}\n`,
      tuning: { timeoutMs: 60_000, closeTimeoutMs: 100 },
    });
    const alice = actor(b, people.alice);
    const lee = actor(b, people.lee);
    const req = await file(alice, { role: 'prod-deploy', reason: 'hang' });
    await hanging.until((r) => r.length === 1);
    // The receiver holds the delivery open; the approval, the mint and the revoke go on.
    const started = performance.now();
    const approved = await lee.post<AccessRequest>(`/v1/requests/${req.id}/reviews`, {
      decision: 'approve',
    });
    expect(approved.status).toBe(200);
    expect(approved.body.state).toBe('approved');
    expect((await alice.post(`/v1/requests/${req.id}/credential`)).status).toBe(200);
    expect((await alice.post(`/v1/requests/${req.id}/revoke`)).status).toBe(200);
    expect(performance.now() - started).toBeLessThan(3_000);
    await healthy.until((r) => r.some((h) => h.body.type === 'request.revoked'));
    expect(typesOf(healthy.received)).toEqual([
      'request.created',
      'review.recorded',
      'request.approved',
      'request.revoked',
    ]);
    expect(hanging.received).toHaveLength(1);
  });

  it.each(['sqlite', 'postgres'] as const)(
    '%s: events the broker could not deliver before it stopped are delivered after a restart',
    async (dialect) => {
      let up = false;
      const hook = await receiver({ respond: (res) => res.writeHead(up ? 200 : 503).end() });
      const notify = `  - webhook: ${hook.url}\n`;
      const first = await broker({ notify, dialect, keep: true });
      // Registered first, so it runs last: it drops the database the second broker uses.
      cleanups.push(() => first.close());
      const req = await file(actor(first, people.alice), {
        role: 'prod-deploy',
        reason: 'restart',
      });
      await hook.until((r) => r.length >= 2);
      // Stop while keeping the database: the next broker opens the same one.
      await first.broker.close();
      const attemptsBefore = hook.received.length;
      up = true;
      const second = await broker({
        notify,
        dbUrl: first.dbUrl,
        issuer: first.issuer,
        clock: first.clock,
      });
      await hook.until((r) => r.some((h) => h.status === 200));
      const ids = new Set(hook.received.map((h) => h.headers['webhook-id']));
      expect(ids.size).toBe(1);
      expect(hook.received.slice(attemptsBefore).every((h) => h.verified)).toBe(true);
      expect(hook.received.filter((h) => h.status === 200)).toHaveLength(1);
      expect(hook.received.at(-1)!.body).toMatchObject({
        type: 'request.created',
        request_id: req.id,
      });
      expect(second.url).not.toBe(first.url);
    },
  );

  it('events committed while the outbox could not be written are routed when it can (nothing is lost after commit)', async () => {
    const hook = await receiver();
    const b = await broker({ notify: `  - webhook: ${hook.url}\n` });
    // The outbox refuses rows (a full disk, a broken table): requests still commit.
    await rawSql(
      b.dbUrl,
      `create trigger refuse_outbox before insert on notification_outbox begin select raise(abort, 'outbox refused'); end`,
    );
    const alice = actor(b, people.alice);
    const req = await file(alice, { role: 'prod-deploy', reason: 'lost?' });
    await actor(b, people.lee).post(`/v1/requests/${req.id}/reviews`, { decision: 'deny' });
    await expect
      .poll(() => b.logs().includes('notifications cannot be routed or delivered right now'), {
        timeout: 10_000,
      })
      .toBe(true);
    expect(hook.received).toHaveLength(0);
    await rawSql(b.dbUrl, 'drop trigger refuse_outbox');
    await hook.until(ofType('request.denied'));
    expect(typesOf(hook.received)).toEqual([
      'request.created',
      'review.recorded',
      'request.denied',
    ]);
    expect(hook.received.every((h) => h.verified)).toBe(true);
  });
});
