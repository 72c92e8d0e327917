import { afterEach, describe, expect, it } from 'vitest';
import { appendAudit } from '../../../src/server/audit/log.js';
import { NOTIFICATION_EVENTS } from '../../../src/server/notify/events.js';
import type { NotifyTuning } from '../../../src/server/notify/worker.js';
import { rawSql, startTestBroker, testClock } from '../../support/broker.js';
import {
  type ReceivedHook,
  type SmtpSink,
  smtpSink,
  type WebhookReceiver,
  webhookReceiver,
} from '../../support/receivers.js';
import { actor, file, POLICY, people } from '../helpers.js';

/**
 * Who is told what: routing by role and event, the expiry reminder (once per grant, with two
 * replicas), revocations, high-priority events to the security contacts, and replicas sharing
 * one outbox on PostgreSQL without delivering anything twice.
 */

const SECRET = `whsec_${Buffer.alloc(24, 0x33).toString('base64')}`;
const TUNING: NotifyTuning = { pollIntervalMs: 50, backoffMs: 20, maxBackoffMs: 200 };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function receiver(path: string): Promise<WebhookReceiver> {
  const r = await webhookReceiver({ secret: SECRET });
  cleanups.push(() => r.close());
  r.url = r.url.replace(/\/hooks\/.*$/, path);
  return r;
}

async function sink(): Promise<SmtpSink> {
  const s = await smtpSink();
  cleanups.push(() => s.close());
  return s;
}

function settings(smtp?: SmtpSink, extra: Record<string, string> = {}) {
  return {
    webhook_secrets: JSON.stringify({ default: SECRET }),
    ...(smtp
      ? {
          smtp: JSON.stringify({
            host: 'localhost',
            port: smtp.port,
            tls: 'none',
            from: 'jit@example.com',
          }),
        }
      : {}),
    ...extra,
  };
}

const ofType = (type: string, id?: string) => (r: ReceivedHook[]) =>
  r.some((h) => h.body.type === type && (id === undefined || h.body.request_id === id));

describe('routing by role and event', () => {
  it('each entry gets only its roles and events; email goes to the audiences each event names', async () => {
    const all = await receiver('/all');
    const prodOnly = await receiver('/prod');
    const decisions = await receiver('/decisions');
    const smtp = await sink();
    const b = await startTestBroker({
      policy:
        `${POLICY}\nnotify:\n` +
        `  - webhook: ${all.url}\n` +
        `  - webhook: ${prodOnly.url}\n    roles: [prod-deploy]\n` +
        `  - webhook: ${decisions.url}\n    events: [request.approved, request.denied]\n` +
        '  - email: [approvers, requester]\n    roles: [two-person]\n' +
        '  - email: [audit@example.com]\n    events: [request.denied]\n',
      settings: settings(smtp),
      start: { notify: TUNING },
    });
    cleanups.push(() => b.close());
    for (const p of [people.lee, people.lin, people.alice]) await actor(b, p).get('/v1/me');
    await b.broker.people.flush();
    const alice = actor(b, people.alice);
    const two = await file(alice, { role: 'two-person', reason: 'migration' });
    const prod = await file(alice, { role: 'prod-deploy', reason: 'deploy' });
    await actor(b, people.lee).post(`/v1/requests/${two.id}/reviews`, { decision: 'deny' });
    await actor(b, people.lin).post(`/v1/requests/${two.id}/reviews`, { decision: 'deny' });
    await actor(b, people.lee).post(`/v1/requests/${prod.id}/reviews`, { decision: 'approve' });

    await all.until((r) => r.length === 7);
    expect(all.received.map((h) => [h.body.type, h.body.request_id])).toEqual([
      ['request.created', two.id],
      ['request.created', prod.id],
      ['review.recorded', two.id],
      ['review.recorded', two.id],
      ['request.denied', two.id],
      ['review.recorded', prod.id],
      ['request.approved', prod.id],
    ]);
    await prodOnly.until(ofType('request.approved'));
    expect(prodOnly.received.map((h) => h.body.request_id)).toEqual([prod.id, prod.id, prod.id]);
    await decisions.until((r) => r.length === 2);
    expect(decisions.received.map((h) => h.body.type).sort()).toEqual([
      'request.approved',
      'request.denied',
    ]);

    // two-person: both leads asked; alice told of the denial; the audit list told of the denial.
    const mails = await smtp.until((m) => m.length === 4);
    const summary = mails.map((m) => `${m.to[0]}: ${m.subject}`).sort();
    expect(summary).toEqual([
      "alice@example.com: Lin denied Alice's request for two-person",
      "audit@example.com: Lin denied Alice's request for two-person",
      'lee@example.com: Alice requests two-person for 30m: migration',
      'lin@example.com: Alice requests two-person for 30m: migration',
    ]);
    expect(mails.find((m) => m.to[0] === 'audit@example.com')!.text).toContain(
      "You get this because the broker's policy sends two-person notifications to this address.",
    );
    expect(all.received.every((h) => h.verified)).toBe(true);
  });
});

describe('the expiry reminder', () => {
  it('is sent once per grant before it ends, by one of two replicas; a revoked grant gets none', async () => {
    const hook = await receiver('/reminders');
    const sentinel = await receiver('/everything');
    const smtp = await sink();
    const clock = testClock();
    const policy =
      `${POLICY}\nnotify:\n` +
      `  - webhook: ${hook.url}\n    events: [request.expiring]\n` +
      `  - webhook: ${sentinel.url}\n    events: [request.created, request.approved, request.revoked]\n` +
      '  - email: requester\n    events: [request.expiring]\n';
    const a = await startTestBroker({
      policy,
      dialect: 'postgres',
      clock,
      // Replicas behind one load balancer share the public URL that links point to.
      settings: settings(smtp, { public_url: 'https://jit.example.com' }),
      start: { notify: TUNING },
    });
    cleanups.push(() => a.close());
    const b = await startTestBroker({
      policy,
      dbUrl: a.dbUrl,
      issuer: a.issuer,
      clock,
      settings: settings(smtp, { public_url: 'https://jit.example.com' }),
      start: { notify: TUNING },
    });
    cleanups.push(() => b.close());

    const kept = await file(actor(a, people.alice), { role: 'prod-deploy', reason: 'kept' });
    const cut = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'cut short' });
    await a.broker.people.flush();
    await b.broker.people.flush();
    await actor(b, people.lee).post(`/v1/requests/${kept.id}/reviews`, { decision: 'approve' });
    await actor(a, people.lee).post(`/v1/requests/${cut.id}/reviews`, { decision: 'approve' });
    await sentinel.until((r) => r.filter((h) => h.body.type === 'request.approved').length === 2);
    const scheduled = (await rawSql(
      a.dbUrl,
      `select request_id, channel, state, next_attempt_at from notification_outbox where event_type = 'request.expiring' order by request_id, channel`,
    )) as { request_id: string; channel: string; state: string; next_attempt_at: number }[];
    expect(scheduled.map((r) => [r.request_id, r.channel, r.state])).toEqual(
      [
        [kept.id, 'email'],
        [kept.id, 'webhook'],
        [cut.id, 'email'],
        [cut.id, 'webhook'],
      ]
        .sort((x, y) => (x[0]! < y[0]! ? -1 : 1))
        .map(([id, ch]) => [id, ch, 'pending']),
    );
    // Due five minutes before the end of the 15-minute window.
    const grant = (
      await actor(a, people.alice).get<{ expires_at: string }>(`/v1/requests/${kept.id}`)
    ).body;
    const row = scheduled.find((r) => r.request_id === kept.id)!;
    expect(Number(row.next_attempt_at)).toBe(Date.parse(grant.expires_at) - 5 * 60_000);
    expect(hook.received).toHaveLength(0);

    await actor(a, people.alice).post(`/v1/requests/${cut.id}/revoke`);
    clock.advance(10 * 60_000 + 1_000);
    await hook.until(ofType('request.expiring', kept.id));
    const [mail] = await smtp.until((m) => m.length === 1);
    expect(mail!.to).toEqual(['alice@example.com']);
    expect(mail!.subject).toBe(`Alice's access to prod-deploy ends at ${grant.expires_at}`);
    expect(hook.received[0]!.body).toMatchObject({
      type: 'request.expiring',
      request_id: kept.id,
      expires_at: grant.expires_at,
      link: `https://jit.example.com/ui/requests/${kept.id}`,
    });

    // Both replicas keep working; a later event passes through, and still one reminder each.
    const later = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'later' });
    await sentinel.until(ofType('request.created', later.id));
    await expect
      .poll(
        async () =>
          (await rawSql(
            a.dbUrl,
            `select request_id, channel, state, attempts from notification_outbox where event_type = 'request.expiring' order by request_id, channel`,
          )) as unknown[],
        { timeout: 10_000 },
      )
      .toEqual(
        [
          { request_id: kept.id, channel: 'email', state: 'sent', attempts: 1 },
          { request_id: kept.id, channel: 'webhook', state: 'sent', attempts: 1 },
          { request_id: cut.id, channel: 'email', state: 'dropped', attempts: 0 },
          { request_id: cut.id, channel: 'webhook', state: 'dropped', attempts: 0 },
        ].sort((x, y) =>
          x.request_id < y.request_id
            ? -1
            : x.request_id > y.request_id
              ? 1
              : x.channel < y.channel
                ? -1
                : 1,
        ),
      );
    expect(hook.received).toHaveLength(1);
    expect(smtp.mails).toHaveLength(1);
  });

  it('is off with expiry_reminder: off, and skipped for a grant shorter than twice the lead time', async () => {
    const hook = await receiver('/reminders');
    const b = await startTestBroker({
      policy: `${POLICY}\nnotify:\n  - webhook: ${hook.url}\n`,
      settings: settings(undefined, { expiry_reminder: '10m' }),
      start: { notify: TUNING },
    });
    cleanups.push(() => b.close());
    // 15 minutes < 2 × 10 minutes: no reminder.
    const short = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'short' });
    const long = await file(actor(b, people.alice), {
      role: 'prod-deploy',
      duration: '30m',
      reason: 'long',
    });
    for (const r of [short, long])
      await actor(b, people.lee).post(`/v1/requests/${r.id}/reviews`, { decision: 'approve' });
    await hook.until((r) => r.filter((h) => h.body.type === 'request.approved').length === 2);
    const rows = (await rawSql(
      b.dbUrl,
      `select request_id from notification_outbox where event_type = 'request.expiring'`,
    )) as { request_id: string }[];
    expect(rows).toEqual([{ request_id: long.id }]);

    const off = await startTestBroker({
      policy: `${POLICY}\nnotify:\n  - webhook: ${hook.url}\n`,
      settings: settings(undefined, { expiry_reminder: 'off' }),
      start: { notify: TUNING },
    });
    cleanups.push(() => off.close());
    const r = await file(actor(off, people.alice), {
      role: 'prod-deploy',
      duration: '1h',
      reason: 'x',
    });
    await actor(off, people.lee).post(`/v1/requests/${r.id}/reviews`, { decision: 'approve' });
    await hook.until(ofType('request.approved', r.id));
    expect(
      await rawSql(
        off.dbUrl,
        `select id from notification_outbox where event_type = 'request.expiring'`,
      ),
    ).toEqual([]);
  });
});

describe('high priority and the security contacts', () => {
  it('an event whose table entry names security_contacts reaches them and the approvers, marked high priority', async () => {
    const policyHook = await receiver('/policy');
    const securityHook = await receiver('/security');
    const smtp = await sink();
    // A type other engineers add (break-glass): one entry in the table, nothing else.
    const events = {
      ...NOTIFICATION_EVENTS,
      'request.break_glass': {
        headline: (f: { requester: string; role: string }) =>
          `${f.requester} used break-glass for ${f.role}`,
        audiences: () => ['approvers', 'security_contacts'] as const,
        priority: 'high' as const,
      },
    };
    const b = await startTestBroker({
      policy: `${POLICY}\nnotify:\n  - webhook: ${policyHook.url}\n  - email: approvers\n`,
      settings: settings(smtp, {
        security_contacts: JSON.stringify([
          'security@example.com',
          { webhook: securityHook.url, format: 'slack' },
        ]),
      }),
      start: { notify: { ...TUNING, events: events as never } },
    });
    cleanups.push(() => b.close());
    await actor(b, people.lee).get('/v1/me');
    await b.broker.people.flush();
    const req = await file(actor(b, people.alice), { role: 'prod-deploy', reason: 'prod down' });
    await smtp.until((m) => m.length === 1);
    await b.broker.db.transaction((tx) =>
      appendAudit(tx, b.broker.db.dialect, b.clock.now(), [
        {
          type: 'request.break_glass' as never,
          request_id: req.id,
          actor: { iss: b.issuer.issuer, sub: people.alice.sub, name: 'Alice' },
          data: { reason: 'prod down' },
        },
      ]),
    );
    const mails = await smtp.until((m) => m.length === 3);
    const high = mails.slice(1).sort((x, y) => x.to[0]!.localeCompare(y.to[0]!));
    expect(high.map((m) => m.to[0])).toEqual(['lee@example.com', 'security@example.com']);
    for (const m of high) {
      expect(m.subject).toBe('[HIGH PRIORITY] Alice used break-glass for prod-deploy');
      expect(m.headers.get('x-priority')).toMatch(/^1/);
      expect(m.headers.get('importance')).toMatch(/high/i);
      expect(m.text).toMatch(/^HIGH PRIORITY\r?\n/);
    }
    expect(high[1]!.text).toContain('a security contact of the jitctl broker');
    const [chat] = await securityHook.until((r) => r.length === 1);
    const blocks = chat!.body.blocks as { text?: { text: string } }[];
    expect(blocks[0]!.text!.text).toBe(
      ':rotating_light: *High priority*\n*Alice used break-glass for prod-deploy*',
    );
    expect(chat!.body.text).toBe(
      `HIGH PRIORITY: Alice used break-glass for prod-deploy — ${req.id}`,
    );
    await policyHook.until(ofType('request.break_glass'));
    expect(
      policyHook.received.find((h) => h.body.type === 'request.break_glass')!.body,
    ).toMatchObject({ priority: 'high', request_id: req.id });
    // The security contacts get nothing else.
    expect(securityHook.received).toHaveLength(1);
  });
});

describe('event types about no request', () => {
  it('an entry naming its own approvers and link (an access-review reminder) reaches them', async () => {
    const hook = await receiver('/all');
    const smtp = await sink();
    const events = {
      ...NOTIFICATION_EVENTS,
      'access_review.reminder': {
        headline: (f: { data: Readonly<Record<string, unknown>> }) =>
          `Access review ${String(f.data.review)} is due`,
        audiences: () => ['approvers'] as const,
        approvers: () => ['group:auditors', 'user:ciso@example.com'],
        link: (f: { data: Readonly<Record<string, unknown>> }, base: string) =>
          `${base}/ui/access-reviews/${encodeURIComponent(String(f.data.review))}`,
      },
    };
    const b = await startTestBroker({
      policy:
        `${POLICY}\nnotify:\n  - webhook: ${hook.url}\n  - email: approvers\n` +
        // A role-limited entry does not hear of events about no role.
        '  - email: [prod@example.com]\n    roles: [prod-deploy]\n',
      settings: settings(smtp),
      start: { notify: { ...TUNING, events: events as never } },
    });
    cleanups.push(() => b.close());
    await actor(b, people.ada).get('/v1/me');
    await actor(b, people.lee).get('/v1/me');
    await b.broker.people.flush();
    await b.broker.db.transaction((tx) =>
      appendAudit(tx, b.broker.db.dialect, b.clock.now(), [
        {
          type: 'access_review.reminder' as never,
          request_id: null,
          actor: null,
          data: { review: 'ar_2025q1' },
        },
      ]),
    );
    const mails = await smtp.until((m) => m.length === 2);
    expect(mails.map((m) => m.to[0]).sort()).toEqual(['ada@example.com', 'ciso@example.com']);
    const link = `${b.broker.publicUrl}/ui/access-reviews/ar_2025q1`;
    for (const m of mails) {
      expect(m.subject).toBe('Access review ar_2025q1 is due');
      expect(m.text).toContain(`Review: ${link}`);
      expect(m.text).toContain('You get this because you are asked to act on it.');
    }
    const [event] = await hook.until((r) => r.length === 1);
    expect(event!.body).toMatchObject({
      type: 'access_review.reminder',
      request_id: null,
      link,
    });
  });
});

describe('replicas sharing one outbox (PostgreSQL)', () => {
  it('two brokers deliver every event exactly once between them', async () => {
    const hook = await receiver('/replicas');
    const clock = testClock();
    const policy = `${POLICY}\nnotify:\n  - webhook: ${hook.url}\n`;
    const opts = { policy, clock, settings: settings(), start: { notify: TUNING } };
    const a = await startTestBroker({ ...opts, dialect: 'postgres' });
    cleanups.push(() => a.close());
    const b = await startTestBroker({ ...opts, dbUrl: a.dbUrl, issuer: a.issuer });
    cleanups.push(() => b.close());
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const on = i % 2 === 0 ? a : b;
        const r = await file(actor(on, people.alice), { role: 'self-service', reason: `r${i}` });
        ids.push(r.id);
      }),
    );
    // self-service is approved at once: created + approved per request.
    await hook.until((r) => r.length >= 12);
    const byId = new Map<string, number>();
    for (const h of hook.received) {
      const id = String(h.headers['webhook-id']);
      byId.set(id, (byId.get(id) ?? 0) + 1);
    }
    expect([...byId.values()].every((n) => n === 1)).toBe(true);
    expect(hook.received.map((h) => `${h.body.request_id} ${h.body.type}`).sort()).toEqual(
      ids.flatMap((id) => [`${id} request.approved`, `${id} request.created`]).sort(),
    );
    await expect
      .poll(
        async () =>
          (await rawSql(
            a.dbUrl,
            `select state, count(*)::int as n from notification_outbox where event_type <> 'request.expiring' group by state`,
          )) as unknown[],
        { timeout: 10_000 },
      )
      .toEqual([{ state: 'sent', n: 12 }]);
  });
});
