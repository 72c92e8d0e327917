import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../../src/server/errors.js';
import type { Caller, RolePolicy } from '../../../src/server/policy/types.js';
import { renderLifecycle, sectionOf } from '../../../src/server/requests/lifecycle/diagram.js';
import {
  ACTIVE_STATES,
  ALL_TRANSITIONS,
  type Change,
  checkLimits,
  decide,
  endsRequest,
  FINAL_STATES,
  type Filing,
  onFile,
  type PersonEvent,
  settle,
  stateIn,
  type TransitionId,
  type Who,
} from '../../../src/server/requests/lifecycle/index.js';
import type { RequestRow, ReviewRow } from '../../../src/server/store/schema.js';

/**
 * The lifecycle's rules on random histories (fast-check): whatever people do in whatever order
 * and however time passes, a request reaches at most one final state and never leaves it, no
 * credential is minted outside an active window (nor before a scheduled start, nor for someone
 * no longer a requester), an extension is never pending on a grant that is not live, a
 * break-glass grant is reported overdue at most once, and every change is a list of table rows,
 * each with exactly its audit events. The service runs the same two calls (settle, then decide) on
 * the row it locked, so these hold for the broker as long as it writes what they return.
 */

const MIN = 60_000;
const ISS = 'https://idp.example.com';

type Person = 'alice' | 'lee' | 'lin' | 'sec' | 'root' | 'mal';
const PEOPLE: Person[] = ['alice', 'lee', 'lin', 'sec', 'root', 'mal'];

const GROUPS: Record<Person, string[]> = {
  alice: ['developers'],
  lee: ['leads'],
  lin: ['leads', 'security'],
  sec: ['security'],
  root: ['admins'],
  mal: [],
};

function caller(p: Person, groups = GROUPS[p]): Caller {
  return {
    iss: ISS,
    sub: `${p}-sub`,
    name: p,
    email: null,
    emailVerified: true,
    groups,
    acr: 'mfa',
    authTime: 0,
  };
}

function who(p: Person, row: RequestRow, removed = false): Who {
  const groups = removed && p === 'alice' ? [] : GROUPS[p];
  return {
    identity: { iss: ISS, sub: `${p}-sub`, name: p },
    requester: row.requester_sub === `${p}-sub`,
    approver: groups.includes('leads') || groups.includes('security'),
    admin: p === 'root',
    eligible: groups.includes('developers'),
    caller: caller(p, groups),
  };
}

interface RoleShape {
  approvals: number;
  multiParty: boolean;
  denials: number;
  ttl: number;
  extendApprovals: number | null;
  breakGlass: boolean;
}

function role(r: RoleShape): RolePolicy {
  const leads = { kind: 'group' as const, name: 'leads' };
  const security = { kind: 'group' as const, name: 'security' };
  return {
    name: 'prod',
    description: null,
    requesters: [{ kind: 'group', name: 'developers' }],
    approvers: [leads, security],
    approvals: r.multiParty ? 2 : r.approvals,
    denials: r.denials,
    defaultDurationMs: 15 * MIN,
    maxDurationMs: 2 * 60 * MIN,
    pendingTtlMs: r.ttl,
    requireReason: false,
    stepUp: null,
    credential: { audience: 'https://k8s.example.com', env: {} },
    approvalGroups: r.multiParty
      ? [
          { from: leads, count: 1 },
          { from: security, count: 1 },
        ]
      : null,
    requireReviewComment: false,
    extend:
      r.extendApprovals === null
        ? null
        : {
            maxTotalMs: 60 * MIN,
            approvals: r.extendApprovals,
            approvalGroups: null,
            requireReason: false,
          },
    breakGlass: r.breakGlass ? { reviewWithinMs: 60 * MIN, maxPerWeek: 2 } : null,
    maxPending: 3,
    rules: [],
  };
}

type Step =
  | { kind: 'review'; by: Person; decision: 'approve' | 'deny' }
  | { kind: 'cancel' | 'revoke' | 'mint'; by: Person }
  | { kind: 'extend'; by: Person; minutes: number }
  | { kind: 'acknowledge'; by: Person; verdict: 'acknowledge' | 'flag' }
  | { kind: 'removed' }
  | { kind: 'wait'; ms: number };

const person = fc.constantFrom(...PEOPLE);
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('review' as const),
    by: person,
    decision: fc.constantFrom('approve' as const, 'deny' as const),
  }),
  fc.record({
    kind: fc.constantFrom('cancel' as const, 'revoke' as const, 'mint' as const),
    by: person,
  }),
  fc.record({
    kind: fc.constant('extend' as const),
    by: person,
    minutes: fc.integer({ min: 1, max: 70 }),
  }),
  fc.record({
    kind: fc.constant('acknowledge' as const),
    by: person,
    verdict: fc.constantFrom('acknowledge' as const, 'flag' as const),
  }),
  fc.record({ kind: fc.constant('removed' as const) }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 90 * MIN }) }),
);
const scenario = fc.record({
  approvals: fc.integer({ min: 0, max: 3 }),
  multiParty: fc.boolean(),
  denials: fc.integer({ min: 1, max: 3 }),
  ttl: fc.integer({ min: 1, max: 120 }).map((m) => m * MIN),
  extendApprovals: fc.option(fc.integer({ min: 0, max: 2 })),
  breakGlass: fc.boolean(),
  useBreakGlass: fc.boolean(),
  rule: fc.option(fc.constantFrom('approve' as const, 'deny' as const), { freq: 2 }),
  startIn: fc.option(
    fc.integer({ min: 1, max: 180 }).map((m) => m * MIN),
    { freq: 2 },
  ),
  duration: fc.integer({ min: 1, max: 120 }).map((m) => m * MIN),
  steps: fc.array(step, { maxLength: 30 }),
});
type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** Runs one history through the rules as the service would, checking every change. */
function run(s: Scenario, seen: Set<TransitionId>): void {
  let now = Date.UTC(2025, 0, 1, 9);
  const r = role(s);
  const breakGlass = s.breakGlass && s.useBreakGlass;
  const filing: Filing = {
    durationMs: s.duration,
    reason: 'x',
    startsAt: breakGlass || s.startIn === null ? null : now + s.startIn,
    breakGlass,
  };
  checkLimits(r, filing, zeroCounts, now);
  const filed = onFile(
    {
      id: 'req_AAAAAAAAAAAA',
      role: r,
      caller: caller('alice'),
      filing,
      ticket: null,
      idempotency: null,
      rule: s.rule === null ? null : { name: 'r', decision: s.rule, onCall: true },
    },
    now,
  );
  let row: RequestRow = { ...filed.row, seq: 1 };
  const reviews: ReviewRow[] = [];
  const finals: string[] = [];
  let overdue = 0;
  let removed = false;
  const apply = (change: Change, before: RequestRow | null) => {
    let state = { ...(before ?? {}) } as Partial<RequestRow>;
    for (const { transition: t, audit } of change.steps) {
      seen.add(t.id);
      expect(audit.map((a) => a.type)).toEqual([...t.audit]);
      expect(audit.length).toBeGreaterThan(0);
      expect(stateIn(t.machine, before === null && t.machine === 'request' ? null : state)).toBe(
        t.from,
      );
      if (t.id === 'break-glass-overdue') overdue++;
      if (t.machine === 'request') state = { ...state, state: t.to as RequestRow['state'] };
    }
    const wasFinal = before !== null && FINAL_STATES.includes(before.state);
    row = { ...(before ?? row), ...change.patch } as RequestRow;
    for (const { transition: t } of change.steps) expect(stateIn(t.machine, row)).toBe(t.to);
    if (!wasFinal && FINAL_STATES.includes(row.state)) {
      finals.push(row.state);
      expect(row.ended_at).toBe(now);
    }
    if (wasFinal)
      expect(change.steps.every((st) => st.transition.machine !== 'request')).toBe(true);
    if (change.review) reviews.push({ request_id: row.id, ...change.review });
    // An extension waits only on a live grant.
    if (row.extension_state === 'pending') expect(row.state).toBe('approved');
  };
  apply(filed.change, null);
  for (const st of s.steps) {
    if (st.kind === 'wait') {
      now += st.ms;
      const swept = settle(row, now);
      if (swept) apply(swept, row);
      continue;
    }
    if (st.kind === 'removed') {
      removed = true;
      continue;
    }
    const settled = settle(row, now);
    if (settled) {
      apply(settled, row);
      // As the service: when time ended the request, the event is refused (it expired).
      if (endsRequest(settled, row)) continue;
    }
    const w = who(st.by, row, removed);
    const event: PersonEvent =
      st.kind === 'review'
        ? { kind: 'review', who: w, body: { decision: st.decision } }
        : st.kind === 'extend'
          ? { kind: 'extend', who: w, body: { duration: `${st.minutes}m` } }
          : st.kind === 'acknowledge'
            ? {
                kind: 'acknowledge',
                who: w,
                body: { verdict: st.verdict, ...(st.verdict === 'flag' ? { comment: 'why' } : {}) },
              }
            : st.kind === 'mint'
              ? {
                  kind: 'mint',
                  who: w,
                  minted: {
                    jti: 'j',
                    audience: 'a',
                    kid: 'k',
                    issuedAt: Math.floor(now / 1000),
                    expiresAt: Math.floor(row.expires_at / 1000),
                  },
                }
              : { kind: st.kind, who: w };
    let change: Change | 'unchanged';
    try {
      change = decide(row, reviews, event, r, now);
    } catch (err) {
      // A refusal is an answer to the caller, never a bug.
      expect(err).toBeInstanceOf(HttpError);
      continue;
    }
    if (change === 'unchanged') continue;
    const main = change.steps[0]!.transition;
    if (main.event === 'mint') {
      // Never a credential outside an active window, nor for someone no longer eligible.
      expect(ACTIVE_STATES).toContain(row.state);
      expect(now).toBeGreaterThanOrEqual(row.approved_at!);
      expect(now).toBeGreaterThanOrEqual(row.starts_at ?? 0);
      expect(now).toBeLessThan(row.expires_at);
      expect(st.by).toBe('alice');
      if (row.starts_at !== null) expect(removed).toBe(false);
    }
    if (main.event === 'review' || main.event === 'acknowledge') expect(w.requester).toBe(false);
    if (main.event === 'extend') {
      expect(w.requester).toBe(true);
      expect(removed).toBe(false);
      expect(row.extended_ms + (change.patch.extension_ms ?? 0)).toBeLessThanOrEqual(60 * MIN);
    }
    apply(change, row);
  }
  expect(finals.length).toBeLessThanOrEqual(1);
  expect(overdue).toBeLessThanOrEqual(1);
}

const zeroCounts = {
  pending: 0,
  oldestPendingDeadline: null,
  breakGlassThisWeek: 0,
  oldestBreakGlass: null,
};

describe('the request lifecycle', () => {
  it('holds its invariants over random histories, and every row of the table is reachable', () => {
    const seen = new Set<TransitionId>();
    // Histories every run includes (the rarer rows), before the random ones.
    const base: Scenario = {
      approvals: 0,
      multiParty: false,
      denials: 1,
      ttl: 60 * MIN,
      extendApprovals: 1,
      breakGlass: false,
      useBreakGlass: false,
      rule: null,
      startIn: null,
      duration: 60 * MIN,
      steps: [],
    };
    const extend = { kind: 'extend', by: 'alice', minutes: 10 } as const;
    const examples: [Scenario][] = [
      [{ ...base, steps: [extend, { kind: 'review', by: 'lee', decision: 'approve' }] }],
      [{ ...base, steps: [extend, { kind: 'review', by: 'lee', decision: 'deny' }] }],
      [{ ...base, steps: [extend, { kind: 'cancel', by: 'alice' }] }],
      [
        {
          ...base,
          extendApprovals: 2,
          steps: [extend, { kind: 'review', by: 'lee', decision: 'approve' }],
        },
      ],
      [{ ...base, steps: [extend, { kind: 'wait', ms: 61 * MIN }] }],
      [{ ...base, approvals: 1, steps: [{ kind: 'review', by: 'lee', decision: 'approve' }] }],
      [{ ...base, rule: 'deny' }],
      [{ ...base, startIn: 30 * MIN, steps: [{ kind: 'wait', ms: 31 * MIN }] }],
      [
        {
          ...base,
          breakGlass: true,
          useBreakGlass: true,
          steps: [
            { kind: 'wait', ms: 61 * MIN },
            { kind: 'acknowledge', by: 'lee', verdict: 'flag' },
          ],
        },
      ],
    ];
    fc.assert(
      fc.property(scenario, (s) => {
        run(s, seen);
      }),
      { numRuns: 1500, examples },
    );
    // None of the table is dead text in the diagram.
    expect(ALL_TRANSITIONS.map((t) => t.id).filter((id) => !seen.has(id))).toEqual([]);
  });

  it('refuses to mint a credential that would outlive the window', () => {
    const r = role({
      approvals: 0,
      multiParty: false,
      denials: 1,
      ttl: MIN,
      extendApprovals: null,
      breakGlass: false,
    });
    const now = Date.UTC(2025, 0, 1, 9);
    const { row } = onFile(
      {
        id: 'req_AAAAAAAAAAAA',
        role: r,
        caller: caller('alice'),
        filing: { durationMs: 10 * MIN, reason: null, startsAt: null, breakGlass: false },
        ticket: null,
        idempotency: null,
        rule: null,
      },
      now,
    );
    const full = { ...row, seq: 1 };
    const minted = {
      jti: 'j',
      audience: 'a',
      kid: 'k',
      issuedAt: Math.floor(now / 1000),
      expiresAt: Math.floor(row.expires_at / 1000) + 1,
    };
    expect(() =>
      decide(full, [], { kind: 'mint', who: who('alice', full), minted }, r, now),
    ).toThrow(/outside its window/);
  });

  it('docs/architecture.md shows the table as it is', () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../../docs/architecture.md'), 'utf8');
    expect(sectionOf(doc), 'run `npx tsx scripts/lifecycle-diagram.ts --write`').toBe(
      renderLifecycle(),
    );
  });
});
