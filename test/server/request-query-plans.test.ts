import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  breakGlassUses,
  decisionTimes,
  eligiblePeople,
  frequentRequesters,
  roleCounts,
} from '../../src/server/governance/report/queries.js';
import { currentRevocations } from '../../src/server/revocation/revocations.js';
import type { Db } from '../../src/server/store/database.js';
import {
  dueForExpiry,
  filingCounts,
  findByIdempotencyKey,
  getRequest,
  type ListFilter,
  listRequests,
} from '../../src/server/store/requests.js';
import { migratedDatabase, requestRow } from '../support/store.js';

/**
 * Every query the broker runs on `requests` (the write path's reads, the filing limits, the list
 * and its keyset branches, the sweeps, revocations, the report's period queries, the access
 * review's per-person reads) must reach its rows through an index: `EXPLAIN QUERY PLAN` shows no
 * `SCAN` of the table or of a whole index. An index dropped later (to make writes cheaper) that a
 * query needed turns one of these plans into a scan and fails here, instead of silently making
 * that query read the whole table at 100,000 requests.
 */
describe('queries on requests use an index (SQLite plans)', () => {
  let db: Db;
  let close: (() => Promise<void>) | undefined;
  const seen: { sql: string; params: unknown[] }[] = [];
  const NOW = 1_800_000_000_000;
  const alice = { iss: 'https://idp', sub: 'alice' };

  beforeAll(async () => {
    ({ db, close } = await migratedDatabase('sqlite'));
    await db.kysely
      .insertInto('requests')
      .values([
        requestRow({ id: 'a', role: 'db', state: 'pending', created_at: NOW - 10 }),
        requestRow({ id: 'b', role: 'db', state: 'approved', created_at: NOW - 5 }),
        requestRow({ id: 'c', role: 'k8s', state: 'revoked', requester_sub: 'bob' }),
      ])
      .execute();
    // Record each statement kysely prepares (the statement cache prepares each text once) and the
    // parameters it runs with, to explain it afterwards exactly as it ran.
    const raw = db.sqlite!;
    const prepare = raw.prepare.bind(raw);
    raw.prepare = ((text: string) => {
      const stmt = prepare(text);
      for (const m of ['all', 'get', 'run', 'iterate'] as const) {
        const orig = stmt[m].bind(stmt) as (...a: unknown[]) => unknown;
        (stmt as unknown as Record<string, unknown>)[m] = (...params: unknown[]) => {
          seen.push({ sql: text, params });
          return orig(...params);
        };
      }
      return stmt;
    }) as typeof raw.prepare;
  });

  afterAll(async () => {
    await close?.();
  });

  const q = () => db.kysely;
  const PK = 'INTEGER PRIMARY KEY';
  const BY_ROLE = 'requests_role_seq';
  const BY_ROLE_STATE = 'requests_role_state_seq';
  const MINE = 'requests_requester_seq';
  const CREATED = 'requests_created';
  const DEADLINES = 'requests_state_expires';
  // [what, the indexes its plan reads `requests` through, the filter]
  const lists: [string, string[], ListFilter][] = [
    ['everything, newest first', [], { limit: 50 }],
    ['next page', [PK], { limit: 50, beforeSeq: 100 }],
    ['by state', ['requests_state_seq'], { state: 'pending', limit: 50 }],
    ['mine', [MINE], { requester: alice, limit: 50 }],
    ['mine by state', [MINE], { requester: alice, state: 'approved', limit: 50 }],
    [
      'a lead: roles and own',
      [PK, BY_ROLE, MINE],
      { roles: ['db', 'k8s'], self: alice, limit: 50 },
    ],
    [
      'a lead: roles by state',
      [PK, BY_ROLE_STATE, MINE],
      { roles: ['db', 'k8s'], self: alice, state: 'pending', limit: 50 },
    ],
    [
      'review queue',
      [PK, BY_ROLE_STATE],
      {
        roles: ['db'],
        self: alice,
        excludeSelf: true,
        rolesOnly: true,
        state: 'pending',
        limit: 50,
      },
    ],
    [
      'extensions waiting',
      [PK, BY_ROLE_STATE],
      { roles: ['db'], self: alice, rolesOnly: true, extensionPending: true, limit: 50 },
    ],
  ];
  const period = { from: NOW - 86_400_000, to: NOW, role: null };
  const cases: [string, string[], () => Promise<unknown>][] = [
    ['a request by id', ['sqlite_autoindex_requests_1'], () => getRequest(q(), 'a')],
    [
      'the idempotency lookup',
      ['requests_idempotency'],
      () => findByIdempotencyKey(q(), 'https://idp', 'alice', 'k'),
    ],
    [
      'the pending count of a filing',
      ['requests_requester_role_state'],
      () => filingCounts(q(), 'sqlite', alice, 'db', NOW, false),
    ],
    [
      'the break-glass count of a filing',
      ['requests_role_requester_created'],
      () => filingCounts(q(), 'sqlite', alice, 'db', NOW, true),
    ],
    [
      'the expiry sweep',
      ['requests_break_glass_review_by', DEADLINES],
      () => dueForExpiry(q(), NOW, 100),
    ],
    ['current revocations', [DEADLINES], () => currentRevocations(q(), NOW, 1_000, 100)],
    ...lists.map(([name, indexes, f]): [string, string[], () => Promise<unknown>] => [
      `list: ${name}`,
      indexes,
      () => listRequests(q(), f),
    ]),
    ['report: counts per role', [CREATED], () => roleCounts(q(), period, NOW)],
    [
      'report: counts of one role',
      [BY_ROLE],
      () => roleCounts(q(), { ...period, role: 'db' }, NOW),
    ],
    ['report: decision times', [CREATED, DEADLINES], () => decisionTimes(q(), period)],
    ['report: break-glass uses', [CREATED], () => breakGlassUses(q(), period, 10)],
    [
      'report: frequent requesters',
      [CREATED],
      () => frequentRequesters(q(), period, 3_600_000, 3, 10),
    ],
    [
      'access review: eligible people',
      ['requests_role_requester_created'],
      () => eligiblePeople(q(), 'db', { groups: ['ops'], subs: ['alice'], emails: [] }, period),
    ],
  ];

  // The unfiltered page walks the primary key (seq) backwards and stops at the page size.
  const walksSeq = new Set(['list: everything, newest first']);

  it.each(cases)('%s', async (name, indexes, run) => {
    seen.length = 0;
    await run();
    const onRequests = seen.filter((s) => /\bfrom "?requests"?/i.test(s.sql));
    expect(onRequests.length).toBeGreaterThan(0);
    const used = new Set<string>();
    for (const { sql, params } of onRequests) {
      const plan = (
        db.sqlite!.prepare(`explain query plan ${sql}`).all(...params) as { detail: string }[]
      ).map((r) => r.detail);
      const onTable = plan.filter((d) => /^(SCAN|SEARCH) (requests|r)\b/.test(d));
      expect(onTable.length, `${sql}\n${plan.join('\n')}`).toBeGreaterThan(0);
      if (process.env.SHOW_PLANS) console.log(`${name}\n  ${sql}\n  ${plan.join('\n  ')}`);
      for (const d of onTable) {
        if (walksSeq.has(name)) expect(d, plan.join('\n')).toBe('SCAN requests');
        else expect(d, `${sql}\n${plan.join('\n')}`).toMatch(/^SEARCH /);
        const index = /USING (?:COVERING )?INDEX (\S+)|USING (INTEGER PRIMARY KEY)/.exec(d);
        if (index) used.add(index[1] ?? index[2]!);
      }
      // A page is read in index order, never every match sorted (a lead's keyset branches sort
      // only what each branch's LIMIT let through, in their union).
      if (name.startsWith('list:') && !plan.includes('CO-ROUTINE branches'))
        expect(plan.join('\n')).not.toMatch(/TEMP B-TREE FOR ORDER BY/);
    }
    // The index each query was written for: a drop that leaves a query a worse index (a role's
    // whole history instead of its pending ones) fails here too, not only a drop that scans.
    expect([...used].sort()).toEqual([...indexes].sort());
  });
});
