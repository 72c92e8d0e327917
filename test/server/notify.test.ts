import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createNotifier, eventText, type NotifyEvent, payload } from '../../src/server/notify.js';

/** A real webhook receiver on 127.0.0.1 port 0; `handle` decides each answer. */
interface Receiver {
  url: string;
  received: { path: string; headers: IncomingMessage['headers']; body: Record<string, unknown> }[];
  close(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

async function receiver(
  handle: (res: ServerResponse, n: number) => void = (res) => res.writeHead(204).end(),
  path = '/hooks/T000/B000/secret-path',
): Promise<Receiver> {
  const received: Receiver['received'] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => {
      data += c.toString();
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(data) });
      handle(res, received.length);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function logger() {
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  return {
    warnings,
    warn: (obj: object, msg: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }),
  };
}

const created: NotifyEvent = {
  type: 'request.created',
  request_id: 'req_7Hq2',
  role: 'prod-deploy',
  requester: 'alice',
  duration: '15m',
  reason: 'hotfix INC-4211',
  ticket: 'INC-4211',
  reviewer: null,
  comment: null,
  at: '2025-01-01T14:17:00Z',
};

/** Fast retries for tests; what is asserted never depends on how fast. */
const quick = { backoffMs: 5, timeoutMs: 5_000 };

describe('createNotifier', () => {
  it('POSTs the event as JSON with a Slack-compatible text', async () => {
    const hook = await receiver();
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, quick);
    notifier.notify(created);
    await notifier.close();
    expect(hook.received).toHaveLength(1);
    const [got] = hook.received;
    expect(got!.path).toBe('/hooks/T000/B000/secret-path');
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.headers['user-agent']).toMatch(/^jitctl\//);
    expect(got!.body).toEqual({
      event_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      type: 'request.created',
      request_id: 'req_7Hq2',
      role: 'prod-deploy',
      requester: 'alice',
      duration: '15m',
      reason: 'hotfix INC-4211',
      ticket: 'INC-4211',
      reviewer: null,
      decision: null,
      comment: null,
      at: '2025-01-01T14:17:00Z',
      text: 'alice requests prod-deploy for 15m: hotfix INC-4211 [INC-4211] — req_7Hq2',
    });
    expect(log.warnings).toEqual([]);
  });

  it('delivers to every target', async () => {
    const a = await receiver();
    const b = await receiver();
    const notifier = createNotifier([{ webhook: a.url }, { webhook: b.url }], logger(), quick);
    notifier.notify(created);
    notifier.notify({ ...created, type: 'request.cancelled' });
    await notifier.close();
    expect(a.received.map((r) => r.body.type).sort()).toEqual([
      'request.cancelled',
      'request.created',
    ]);
    expect(b.received).toHaveLength(2);
  });

  it('never sends fields it does not know, such as a token passed by mistake', async () => {
    const hook = await receiver();
    const notifier = createNotifier([{ webhook: hook.url }], logger(), quick);
    notifier.notify({ ...created, token: 'eyJhbGciOiJFZERTQSJ9.secret.sig' } as NotifyEvent);
    await notifier.close();
    expect(JSON.stringify(hook.received)).not.toContain('secret.sig');
  });

  it('retries after a 500, with the same event id', async () => {
    const hook = await receiver((res, n) => res.writeHead(n === 1 ? 500 : 200).end());
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, quick);
    notifier.notify(created);
    await notifier.close();
    expect(hook.received).toHaveLength(2);
    expect(hook.received[1]!.body.event_id).toBe(hook.received[0]!.body.event_id);
    expect(log.warnings).toEqual([]);
  });

  it('gives up after the retries and logs the origin, never the secret path', async () => {
    const hook = await receiver((res) => res.writeHead(503).end());
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, { ...quick, retries: 2 });
    notifier.notify(created);
    await notifier.close();
    expect(hook.received).toHaveLength(3);
    expect(log.warnings).toEqual([
      {
        msg: 'webhook delivery failed',
        obj: {
          webhook: new URL(hook.url).origin,
          event: 'request.created',
          request_id: 'req_7Hq2',
          attempts: 3,
          status: 503,
        },
      },
    ]);
    expect(JSON.stringify(log.warnings)).not.toContain('secret-path');
  });

  it('does not retry a 4xx answer or follow a redirect', async () => {
    const bad = await receiver((res) => res.writeHead(400).end('no'));
    const moved = await receiver((res) =>
      res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end(),
    );
    const log = logger();
    const notifier = createNotifier([{ webhook: bad.url }, { webhook: moved.url }], log, quick);
    notifier.notify(created);
    await notifier.close();
    expect(bad.received).toHaveLength(1);
    expect(moved.received).toHaveLength(1);
    expect(log.warnings.map((w) => w.obj.status).sort()).toEqual([302, 400]);
  });

  it('times out a receiver that never answers, without throwing', async () => {
    const hook = await receiver(() => {
      /* never answers */
    });
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, {
      ...quick,
      timeoutMs: 200,
      retries: 1,
    });
    expect(notifier.notify(created)).toBeUndefined();
    await notifier.close();
    expect(hook.received).toHaveLength(2);
    expect(log.warnings).toEqual([
      expect.objectContaining({
        msg: 'webhook delivery failed',
        obj: expect.objectContaining({ attempts: 2, err: 'timed out after 200 ms' }),
      }),
    ]);
  });

  it('survives a receiver that is down: retries, then one warning, no throw', async () => {
    const hook = await receiver();
    await hook.close();
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, quick);
    expect(() => notifier.notify(created)).not.toThrow();
    await notifier.close();
    expect(log.warnings).toEqual([
      expect.objectContaining({
        msg: 'webhook delivery failed',
        obj: expect.objectContaining({ attempts: 3, err: 'ECONNREFUSED' }),
      }),
    ]);
  });

  it('returns before the delivery is done, and close() waits for it', async () => {
    let release: (() => void) | undefined;
    const hook = await receiver((res) => {
      release = () => res.writeHead(200).end();
    });
    const notifier = createNotifier([{ webhook: hook.url }], logger(), quick);
    notifier.notify(created);
    // notify() returned while the receiver has not even seen the request.
    expect(hook.received).toHaveLength(0);
    let closed = false;
    const closing = notifier.close().then(() => {
      closed = true;
    });
    await expect.poll(() => hook.received.length, { timeout: 10_000 }).toBe(1);
    expect(closed).toBe(false);
    release!();
    await closing;
    expect(closed).toBe(true);
  });

  it('bounds close(): deliveries still hanging are abandoned with a warning', async () => {
    const hook = await receiver(() => {
      /* never answers */
    });
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, {
      timeoutMs: 600_000,
      closeTimeoutMs: 100,
    });
    notifier.notify(created);
    await expect.poll(() => hook.received.length, { timeout: 10_000 }).toBe(1);
    await notifier.close();
    expect(log.warnings.map((w) => w.msg)).toEqual(['webhook delivery abandoned at shutdown']);
  });

  it('drops events after close and when too many are in flight, with warnings', async () => {
    const hook = await receiver(() => {
      /* never answers */
    });
    const log = logger();
    const notifier = createNotifier([{ webhook: hook.url }], log, {
      maxInFlight: 1,
      closeTimeoutMs: 100,
    });
    notifier.notify(created);
    notifier.notify(created);
    expect(log.warnings.map((w) => w.msg)).toEqual([
      'too many webhook deliveries in flight; event dropped',
    ]);
    await notifier.close();
    notifier.notify(created);
    expect(log.warnings.at(-1)!.msg).toBe('notifier closed; event dropped');
  });

  it('never throws, even when the logger does', async () => {
    const notifier = createNotifier(
      [{ webhook: 'http://127.0.0.1:1/' }],
      {
        warn() {
          throw new Error('logger broke');
        },
      },
      { ...quick, retries: 0 },
    );
    notifier.notify(created);
    await expect(notifier.close()).resolves.toBeUndefined();
    notifier.notify(created);
  });

  it('does nothing without targets', async () => {
    const log = logger();
    const notifier = createNotifier([], log);
    notifier.notify(created);
    await notifier.close();
    expect(log.warnings).toEqual([]);
  });
});

describe('eventText', () => {
  const base = { ...created, reason: null, ticket: null };
  it.each([
    [
      { type: 'request.created', reason: 'hotfix' },
      'alice requests prod-deploy for 15m: hotfix — req_7Hq2',
    ],
    [{ type: 'request.created' }, 'alice requests prod-deploy for 15m — req_7Hq2'],
    [
      { type: 'review.recorded', reviewer: 'lee', decision: 'approve', comment: 'ok' },
      "lee approves alice's request for prod-deploy: ok — req_7Hq2",
    ],
    [
      { type: 'review.recorded', reviewer: 'lee', decision: 'deny' },
      "lee denies alice's request for prod-deploy — req_7Hq2",
    ],
    [
      { type: 'request.approved', reviewer: 'lee' },
      "lee approved alice's request for prod-deploy (15m) — req_7Hq2",
    ],
    [
      { type: 'request.approved' },
      "alice's request for prod-deploy (15m) was approved automatically — req_7Hq2",
    ],
    [
      { type: 'request.denied', reviewer: 'lee', comment: 'not now' },
      "lee denied alice's request for prod-deploy: not now — req_7Hq2",
    ],
    [{ type: 'request.cancelled' }, 'alice cancelled their request for prod-deploy — req_7Hq2'],
    [{ type: 'request.expired' }, "alice's request for prod-deploy expired — req_7Hq2"],
    [
      { type: 'request.revoked', reviewer: 'lee' },
      "lee revoked alice's access to prod-deploy — req_7Hq2",
    ],
  ] as const)('%j', (overrides, text) => {
    expect(eventText({ ...base, ...overrides } as NotifyEvent)).toBe(text);
  });

  it('escapes Slack markup and shows control characters as escapes', () => {
    const text = eventText({
      ...base,
      reason: '<!channel> & <https://evil.example|click> \u001b[31m\u202e',
    });
    expect(text).toBe(
      'alice requests prod-deploy for 15m: &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; \\x1b[31m\\u202e — req_7Hq2',
    );
  });

  it('cuts long reasons', () => {
    const text = eventText({ ...base, reason: 'x'.repeat(1000) });
    expect(text).toContain(`${'x'.repeat(300)}…`);
    expect(text).not.toContain('x'.repeat(301));
  });

  it('gives every event its own id', () => {
    expect(payload(created).event_id).not.toBe(payload(created).event_id);
  });
});
