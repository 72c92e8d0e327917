import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { Secret } from '../../src/api/secret.js';
import type { StepUpChallenge } from '../../src/api/step-up.js';
import type { SessionManager } from '../../src/auth/session.js';
import { ApiError, AuthError, ExitCode, JitError } from '../../src/cli/errors.js';
import { waitForDecision } from '../../src/client/await-approval.js';
import {
  BrokerClient,
  type BrokerClientOptions,
  MAX_BACKOFF_MS,
  parseRetryAfter,
  type RetryEvent,
} from '../../src/client/broker-client.js';
import { closedPort, type FaultServer, recordingClock, startFaultServer } from './fault-server.js';

/**
 * The API client's network behaviour against a server that fails on purpose: what is retried
 * and what is not, the backoff steps, Retry-After, timeouts, the broker's JSON errors, and the
 * wait loop across an outage. Sleeps go through a recording clock, so nothing here waits.
 */

let server: FaultServer;
const clients: BrokerClient[] = [];

beforeAll(async () => {
  server = await startFaultServer();
});
afterAll(async () => {
  await server.close();
});
afterEach(async () => {
  server.reset();
  for (const c of clients.splice(0)) await c.close();
});

/** A session that hands out a fixed token and counts step-ups (the client's side of the contract). */
function fakeSession(onStepUp?: (c: StepUpChallenge, why: string) => void): SessionManager {
  return {
    server: 'unused',
    bearer: async () => new Secret('test-bearer-token'),
    stepUp: async (c, why) => onStepUp?.(c, why),
  };
}

function client(opts: Partial<BrokerClientOptions> = {}) {
  const clock = recordingClock();
  const retries: RetryEvent[] = [];
  const c = new BrokerClient({
    server: server.url,
    session: fakeSession(),
    clock,
    random: () => 1,
    onRetry: (e) => retries.push(e),
    ...opts,
  });
  clients.push(c);
  return { c, clock, retries };
}

const REQUEST: AccessRequest = {
  id: 'req_7Hq2Xn4pQr9a',
  role: 'prod-deploy',
  state: 'pending',
  requester: { iss: 'https://idp.example.com', sub: 'alice', name: 'Alice' },
  duration: '15m',
  reason: 'hotfix',
  ticket: null,
  created_at: '2030-01-01T10:00:00.000Z',
  expires_at: '2030-01-01T11:00:00.000Z',
  approvals_required: 1,
  reviews: [],
  approvers: ['group:leads'],
  fingerprint: 'aaaa-bbbb-cccc-dddd',
};
const ok = (body: unknown = REQUEST, headers?: Record<string, string>) =>
  ({ kind: 'json', body, ...(headers ? { headers } : {}) }) as const;
const unavailable = (headers?: Record<string, string>) =>
  ({
    kind: 'json',
    status: 503,
    body: { error: { code: 'unavailable', message: 'the database is busy' } },
    ...(headers ? { headers } : {}),
  }) as const;

describe('retries and backoff', () => {
  it('retries a GET after 503 with exponential steps, then returns the answer', async () => {
    const { c, clock, retries } = client();
    server.script(unavailable(), unavailable(), unavailable(), ok());
    const r = await c.getRequest(REQUEST.id);
    expect(r.id).toBe(REQUEST.id);
    expect(server.seen).toHaveLength(4);
    // random() pinned to 1: each step is the whole exponential step.
    expect(clock.sleeps).toEqual([250, 500, 1000]);
    expect(retries.map((e) => e.reason)).toEqual(['HTTP 503', 'HTTP 503', 'HTTP 503']);
  });

  it('jitters within the step and caps it at 5 s', async () => {
    const { c, clock } = client({ attempts: 9, random: () => 0.5 });
    server.fallback = unavailable();
    await expect(c.getRequest(REQUEST.id)).rejects.toMatchObject({
      exitCode: ExitCode.Unreachable,
    });
    expect(server.seen).toHaveLength(9);
    expect(clock.sleeps).toEqual([125, 250, 500, 1000, 2000, 2500, 2500, 2500]);
    expect(Math.max(...clock.sleeps)).toBeLessThanOrEqual(MAX_BACKOFF_MS);
  });

  it('honours Retry-After in seconds and as an HTTP date', async () => {
    const { c, clock } = client();
    const date = new Date(Date.now() + 3_000).toUTCString();
    server.script(unavailable({ 'retry-after': '2' }), unavailable({ 'retry-after': date }), ok());
    await c.getRequest(REQUEST.id);
    expect(clock.sleeps[0]).toBe(2000);
    // An HTTP date has whole seconds: somewhere in the 3 s ahead, after the clock's own 2 s.
    expect(clock.sleeps[1]).toBeGreaterThanOrEqual(0);
    expect(clock.sleeps[1]).toBeLessThanOrEqual(3000);
  });

  it('retries 429 with its Retry-After', async () => {
    const { c, clock } = client();
    server.script(
      {
        kind: 'json',
        status: 429,
        body: { error: { code: 'rate_limited', message: 'slow down' } },
        headers: { 'retry-after': '1' },
      },
      ok(),
    );
    await c.getRequest(REQUEST.id);
    expect(clock.sleeps).toEqual([1000]);
  });

  it('says a long 429 is a rate limit, with the broker’s message and hint', async () => {
    const { c, clock } = client();
    server.script({
      kind: 'json',
      status: 429,
      body: {
        error: {
          code: 'rate_limited',
          message:
            'too many failed sign-ins from your address: at most 100 per 5m; try again in 280 s',
          hint: 'fix the token the client sends',
        },
      },
      headers: { 'retry-after': '280' },
    });
    const err = await c.getRequest(REQUEST.id).catch((e: unknown) => e);
    // The broker answered: its limit is the outcome (exit 1 with its words), not an outage.
    expect(err).toMatchObject({
      exitCode: ExitCode.Error,
      message: expect.stringContaining('too many failed sign-ins from your address'),
      hint: 'fix the token the client sends',
    });
    expect(clock.sleeps).toEqual([]);
  });

  it('does not wait out a Retry-After of an hour: it fails at once and says when', async () => {
    const { c, clock } = client();
    server.script(unavailable({ 'retry-after': '3600' }));
    const err = await c.getRequest(REQUEST.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JitError);
    expect(err).toMatchObject({ exitCode: ExitCode.Unreachable });
    expect((err as Error).message).toContain('asks to come back in 3600 s');
    expect(server.seen).toHaveLength(1);
    expect(clock.sleeps).toEqual([]);
  });

  it('exits 69 when the broker refuses connections, after every attempt', async () => {
    const { c, clock } = client({ server: await closedPort(), attempts: 3 });
    const err = await c.getRequest(REQUEST.id).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: ExitCode.Unreachable });
    expect((err as Error).message).toMatch(
      /cannot reach the broker at .* \(ECONNREFUSED after 3 attempts\)/,
    );
    expect((err as JitError).hint).toContain('check that the broker is running');
    expect(clock.sleeps).toHaveLength(2);
  });

  it('retries a GET whose connection was reset, and one that timed out', async () => {
    const { c } = client({ readTimeoutMs: 300 });
    server.script({ kind: 'reset' }, { kind: 'hang' }, ok());
    const r = await c.getRequest(REQUEST.id);
    expect(r.state).toBe('pending');
    expect(server.seen).toHaveLength(3);
  });

  it('retries filing a request after a reset, with the same Idempotency-Key', async () => {
    const { c } = client();
    server.script({ kind: 'reset' }, { kind: 'reset' }, { ...ok(), status: 201 });
    await c.createRequest({ role: 'prod-deploy', duration: '15m' }, 'key-123');
    expect(server.seen).toHaveLength(3);
    expect(server.seen.map((s) => s.headers['idempotency-key'])).toEqual([
      'key-123',
      'key-123',
      'key-123',
    ]);
    expect(JSON.parse(server.seen[2]!.body)).toEqual({ role: 'prod-deploy', duration: '15m' });
  });

  it('never repeats a review whose connection broke: the broker may have recorded it', async () => {
    const { c } = client();
    server.script({ kind: 'reset' }, ok());
    const err = await c
      .review(REQUEST.id, { decision: 'approve' })
      .catch((e: unknown) => e as JitError);
    expect(server.seen).toHaveLength(1);
    expect(err).toMatchObject({ exitCode: ExitCode.Unreachable });
    expect((err as JitError).hint).toMatch(/may or may not have been done.*jitctl show/);
  });

  it('does not repeat a review after a 502 from a proxy, but does after a 503 (nothing done)', async () => {
    const { c } = client();
    server.script({ kind: 'text', status: 502, body: '<html>Bad Gateway</html>' });
    const err = await c.review(REQUEST.id, { decision: 'deny' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 502, exitCode: ExitCode.Unreachable });
    expect(server.seen).toHaveLength(1);

    server.seen.length = 0;
    server.script(unavailable(), ok());
    await c.review(REQUEST.id, { decision: 'deny' });
    expect(server.seen).toHaveLength(2);
  });

  it('stops retrying at Ctrl-C (exit 130) and sends nothing more', async () => {
    const controller = new AbortController();
    const { c } = client({
      signal: controller.signal,
      onRetry: () => controller.abort(),
    });
    server.fallback = unavailable();
    await expect(c.getRequest(REQUEST.id)).rejects.toMatchObject({
      exitCode: ExitCode.Interrupted,
    });
    expect(server.seen).toHaveLength(1);
  });
});

describe("the broker's answers", () => {
  it.each([
    [400, 'unknown_role', ExitCode.Usage],
    [401, 'unauthenticated', ExitCode.Auth],
    [403, 'forbidden', ExitCode.Denied],
    [404, 'not_found', ExitCode.Error],
    [409, 'invalid_state', ExitCode.Denied],
    [409, 'already_reviewed', ExitCode.Error],
    [422, 'idempotency_key_reused', ExitCode.Usage],
  ])('HTTP %i %s: the message and hint, exit %i, no retry', async (status, code, exit) => {
    const { c } = client();
    server.script({
      kind: 'json',
      status,
      body: { error: { code, message: `message for ${code}`, hint: `hint for ${code}` } },
    });
    const err = (await c.getRequest(REQUEST.id).catch((e: unknown) => e)) as JitError;
    expect(err.exitCode).toBe(exit);
    expect(err.message).toBe(`message for ${code}`);
    expect(err.hint).toBe(`hint for ${code}`);
    if (status !== 401) expect(err).toMatchObject({ code, status });
    expect(server.seen).toHaveLength(1);
  });

  it('shows escape sequences in a message as visible text, never raw', async () => {
    const { c } = client();
    server.script({
      kind: 'json',
      status: 400,
      body: {
        error: {
          code: 'unknown_role',
          message: 'there is no role "\u001b[31mprod\u001b]0;pwned\u0007"',
          hint: 'roles you may request: \u202eprod',
        },
      },
    });
    const err = (await c.getRequest(REQUEST.id).catch((e: unknown) => e)) as JitError;
    expect(err.message).toBe('there is no role "\\x1b[31mprod\\x1b]0;pwned\\x07"');
    expect(err.hint).toBe('roles you may request: \\u202eprod');
  });

  it('says so when an error is not the JSON of a broker (an HTML page from a proxy)', async () => {
    const { c } = client();
    server.script({ kind: 'text', status: 500, body: '<html>oops</html>' });
    await expect(c.getRequest(REQUEST.id)).rejects.toThrow(
      `the broker at ${server.url} answered HTTP 500`,
    );
    expect(server.seen).toHaveLength(1);
  });

  it('refuses a 200 that is not JSON, and one of the wrong shape', async () => {
    const { c } = client();
    server.script({ kind: 'text', status: 200, body: '<html>login</html>' });
    await expect(c.getRequest(REQUEST.id)).rejects.toThrow(/something that is not JSON/);
    server.script(ok({ ...REQUEST, state: 'maybe' }));
    const err = (await c.getRequest(REQUEST.id).catch((e: unknown) => e)) as JitError;
    expect(err.message).toMatch(
      /unexpected answer to GET \/v1\/requests\/req_7Hq2Xn4pQr9a \(\/state/,
    );
    expect(err.exitCode).toBe(ExitCode.Error);
    // approve, deny and wait read roles and identity from /v1/me: a partial one is refused too.
    server.script(ok({ iss: 'https://idp.example.com', sub: 'alice' }));
    await expect(c.me()).rejects.toThrow(/unexpected answer to GET \/v1\/me \(\/name/);
  });

  it('stops reading an answer that will not end', async () => {
    const { c } = client();
    server.script({ kind: 'flood', bytes: 20 * 1024 * 1024 });
    await expect(c.getRequest(REQUEST.id)).rejects.toThrow(/answer over \d+ bytes/);
  });

  it('steps up once on an RFC 9470 challenge and retries; a second challenge is exit 4', async () => {
    const challenges: Array<{ c: StepUpChallenge; why: string }> = [];
    const { c } = client({ session: fakeSession((ch, why) => challenges.push({ c: ch, why })) });
    const challenge = {
      kind: 'json',
      status: 401,
      body: { error: { code: 'insufficient_user_authentication', message: 'reviewing needs MFA' } },
      headers: {
        'www-authenticate':
          'Bearer error="insufficient_user_authentication", acr_values="mfa", max_age=300',
      },
    } as const;
    server.script(challenge, ok());
    await c.review(REQUEST.id, { decision: 'approve' });
    expect(challenges).toEqual([
      { c: { acrValues: 'mfa', maxAge: 300 }, why: 'reviewing needs MFA' },
    ]);
    expect(server.seen.map((s) => s.headers.authorization)).toEqual([
      'Bearer test-bearer-token',
      'Bearer test-bearer-token',
    ]);

    server.script(challenge, challenge);
    const err = await c.review(REQUEST.id, { decision: 'approve' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err).toMatchObject({ exitCode: ExitCode.Auth });
    expect(challenges).toHaveLength(2);
  });

  it('sends the long poll as wait and If-None-Match, and returns the ETag', async () => {
    const { c } = client();
    server.script(ok(REQUEST, { etag: '"pending.1"' }));
    const r = await c.pollRequest(REQUEST.id, { waitMs: 30_000, etag: '"pending.0"' });
    expect(r.etag).toBe('"pending.1"');
    expect(server.seen[0]!.url).toBe(`/v1/requests/${REQUEST.id}?wait=30s`);
    expect(server.seen[0]!.headers['if-none-match']).toBe('"pending.0"');
  });

  it('passes list filters only when they are set', async () => {
    const { c } = client();
    server.script(ok({ items: [], next_cursor: null }), ok({ items: [], next_cursor: null }));
    await c.listRequests({ mine: false, reviewable: true, state: 'pending', limit: 5 });
    await c.listRequests({});
    expect(server.seen.map((s) => s.url)).toEqual([
      '/v1/requests?reviewable=true&state=pending&limit=5',
      '/v1/requests',
    ]);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and dates, and ignores what is neither', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Mon, 31 Dec 2029 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(['5', '9'], now)).toBe(5000);
    for (const bad of ['soon', '-5', '1.5', '', undefined]) {
      expect(parseRetryAfter(bad, now)).toBeUndefined();
    }
  });
});

describe('waiting for a decision across an outage', () => {
  it('keeps polling through refused connections and 503s, says so once, and wakes on the decision', async () => {
    const { c, clock } = client();
    const approved: AccessRequest = { ...REQUEST, state: 'approved' };
    server.script(
      ok(REQUEST, { etag: '"pending.0"' }),
      { kind: 'reset' },
      unavailable(),
      unavailable(),
      ok(REQUEST, { etag: '"pending.0"' }),
      ok(approved, { etag: '"approved.1"' }),
    );
    const events: string[] = [];
    const result = await waitForDecision(c, REQUEST, {
      clock,
      random: () => 1,
      onChange: (r) => events.push(`change:${r.state}`),
      onUnreachable: () => events.push('unreachable'),
      onReachable: () => events.push('reachable'),
    });
    expect(result).toEqual({ outcome: 'decided', request: approved });
    expect(events).toEqual(['change:pending', 'unreachable', 'reachable', 'change:approved']);
    // One poll per attempt; the loop's own backoff between failed polls.
    expect(server.seen).toHaveLength(6);
    expect(clock.sleeps).toEqual([250, 500, 1000]);
    // The first poll fetches the current version without waiting; later ones wait with its ETag.
    expect(server.seen[0]!.url).toBe(`/v1/requests/${REQUEST.id}`);
    expect(server.seen[5]!.url).toBe(`/v1/requests/${REQUEST.id}?wait=30s`);
    expect(server.seen[5]!.headers['if-none-match']).toBe('"pending.0"');
  });

  it('times out during an outage at the deadline, not later', async () => {
    const { c, clock } = client();
    server.script(ok(REQUEST, { etag: '"pending.0"' }));
    server.fallback = { kind: 'reset' };
    const deadline = clock.now() + 10_000;
    const result = await waitForDecision(c, REQUEST, { clock, deadline, random: () => 1 });
    expect(result.outcome).toBe('timeout');
    expect(clock.now()).toBeGreaterThanOrEqual(deadline);
    expect(clock.now()).toBeLessThan(deadline + 1000);
    expect(clock.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10_000);
  });

  it('gives up on an answer that is not a connection problem (the request is gone)', async () => {
    const { c } = client();
    server.script({
      kind: 'json',
      status: 404,
      body: { error: { code: 'not_found', message: 'no request req_7Hq2Xn4pQr9a' } },
    });
    await expect(waitForDecision(c, REQUEST, { clock: recordingClock() })).rejects.toThrow(
      'no request req_7Hq2Xn4pQr9a',
    );
  });
});
