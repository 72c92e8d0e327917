import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EventFacts, eventSpec } from '../../src/server/notify/events.js';
import { OnCallList, parseOnCall } from '../../src/server/on-call.js';
import type { Caller } from '../../src/server/policy/types.js';

/**
 * The on-call list of approval rules, read from a real HTTP server: entries by email, subject or
 * principal; a failed refresh keeps the last good list; before any good read nobody is on call.
 * And what the notifications of the lifecycle's events say, and to whom.
 */

const caller = (sub: string, email: string | null, groups: string[] = []): Caller => ({
  iss: 'i',
  sub,
  name: null,
  email,
  emailVerified: true,
  groups,
  acr: null,
  authTime: null,
});

let body = 'bob@example.com\n# secondary\nuser:carol-sub\n';
let status = 200;
let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oncall.txt`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const logs: string[] = [];
const logger = { info: () => {}, warn: (_: object, msg: string) => logs.push(msg) };

describe('the on-call list', () => {
  it('reads entries, refreshes, and keeps the last good list when a read fails', async () => {
    const list = new OnCallList({ source: url, refreshMs: 60_000 }, null, logger);
    expect(list.has(caller('bob-sub', 'bob@example.com'))).toBe(false);
    await list.start();
    try {
      expect(list.has(caller('bob-sub', 'bob@example.com'))).toBe(true);
      expect(list.has(caller('carol-sub', null))).toBe(true);
      expect(list.has(caller('alice-sub', 'alice@example.com'))).toBe(false);
      body = '["alice@example.com"]';
      expect(await list.refresh()).toBe(true);
      expect(list.has(caller('alice-sub', 'alice@example.com'))).toBe(true);
      expect(list.has(caller('bob-sub', 'bob@example.com'))).toBe(false);
      status = 500;
      expect(await list.refresh()).toBe(false);
      expect(list.has(caller('alice-sub', 'alice@example.com'))).toBe(true);
      expect(logs.at(-1)).toMatch(/could not be read; keeping the last one/);
    } finally {
      list.close();
      status = 200;
    }
  });

  it('before any good read, nobody is on call', async () => {
    const list = new OnCallList(
      { source: '/nonexistent/oncall.txt', refreshMs: 60_000 },
      null,
      logger,
    );
    await list.start();
    list.close();
    expect(list.size).toBe(0);
  });

  it('parses lines and JSON, and skips what is not an entry', () => {
    expect(parseOnCall('a@example.com\n\n  # c\nuser:x\ngroup:sre\nuser:\n').entries).toEqual([
      { kind: 'user', value: 'a@example.com' },
      { kind: 'user', value: 'x' },
      { kind: 'group', name: 'sre' },
    ]);
    expect(parseOnCall('user:\n').problems).toHaveLength(1);
    expect(() => parseOnCall('[1, 2]')).toThrow(/array of strings/);
  });
});

describe('notifications of the lifecycle events', () => {
  const facts = (type: string, over: Partial<EventFacts> = {}): EventFacts => ({
    type,
    requestId: 'req_1',
    role: 'prod',
    requester: 'alice',
    duration: '15m',
    reason: 'db down',
    ticket: null,
    actor: 'lee',
    actorIsRequester: false,
    decision: null,
    comment: null,
    expiresAt: null,
    data: {},
    ...over,
  });
  it('says what happened, and break-glass goes to approvers and security contacts first', () => {
    const used = eventSpec('break_glass.used')!;
    expect(used.headline(facts('break_glass.used', { actor: 'alice' }))).toMatch(
      /^BREAK-GLASS: alice took prod without approval: db down/,
    );
    expect(used.priority).toBe('high');
    expect(used.audiences(facts('break_glass.used'))).toEqual(['approvers', 'security_contacts']);
    const extended = eventSpec('extension.approved')!;
    expect(
      extended.headline(
        facts('extension.approved', { data: { expires_at: '2025-01-01T01:00:00Z' } }),
      ),
    ).toBe("lee extended alice's access to prod until 2025-01-01T01:00:00Z");
    expect(extended.audiences(facts('extension.approved'))).toEqual(['requester']);
    expect(eventSpec('break_glass.overdue')!.headline(facts('break_glass.overdue'))).toMatch(
      /^OVERDUE/,
    );
  });
});
