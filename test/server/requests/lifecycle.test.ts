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
  decide,
  FINAL_STATES,
  onFile,
  type PersonEvent,
  settle,
  type TransitionId,
  type Who,
} from '../../../src/server/requests/lifecycle/index.js';
import type { RequestRow, ReviewRow } from '../../../src/server/store/schema.js';

/**
 * The lifecycle's rules on random histories (fast-check): whatever people do in whatever order
 * and however time passes, a request reaches at most one final state and never leaves it, no
 * credential is minted outside an active window, and every change is a row of the table with
 * exactly that row's audit events. The service runs the same two calls (settle, then decide) on
 * the row it locked, so these hold for the broker as long as it writes what they return.
 */

const MIN = 60_000;
const ISS = 'https://idp.example.com';

type Person = 'alice' | 'lee' | 'lin' | 'lou' | 'root' | 'mal';
const PEOPLE: Person[] = ['alice', 'lee', 'lin', 'lou', 'root', 'mal'];

function caller(p: Person): Caller {
  return {
    iss: ISS,
    sub: `${p}-sub`,
    name: p,
    email: null,
    emailVerified: true,
    groups:
      p === 'alice' ? ['developers'] : p === 'root' ? ['admins'] : p === 'mal' ? [] : ['leads'],
    acr: 'mfa',
    authTime: 0,
  };
}

function who(p: Person, row: RequestRow): Who {
  return {
    identity: { iss: ISS, sub: `${p}-sub`, name: p },
    requester: row.requester_sub === `${p}-sub`,
    approver: ['lee', 'lin', 'lou'].includes(p),
    admin: p === 'root',
  };
}

function role(r: { approvals: number; denials: number; ttl: number }): RolePolicy {
  return {
    name: 'prod',
    description: null,
    requesters: [{ kind: 'group', name: 'developers' }],
    approvers: [{ kind: 'group', name: 'leads' }],
    approvals: r.approvals,
    denials: r.denials,
    defaultDurationMs: 15 * MIN,
    maxDurationMs: 2 * 60 * MIN,
    pendingTtlMs: r.ttl,
    requireReason: false,
    stepUp: null,
    credential: { audience: 'https://k8s.example.com', env: {} },
  };
}

type Step =
  | { kind: 'review'; by: Person; decision: 'approve' | 'deny' }
  | { kind: 'cancel' | 'revoke' | 'mint'; by: Person }
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
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 90 * MIN }) }),
);
const scenario = fc.record({
  approvals: fc.integer({ min: 0, max: 3 }),
  denials: fc.integer({ min: 1, max: 3 }),
  ttl: fc.integer({ min: 1, max: 120 }).map((m) => m * MIN),
  duration: fc.integer({ min: 1, max: 120 }).map((m) => m * MIN),
  steps: fc.array(step, { maxLength: 30 }),
});

interface Seen {
  transitions: Set<TransitionId>;
}

/** Runs one history through the rules as the service would, checking every change. */
type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function run(s: Scenario, seen: Seen): void {
  let now = Date.UTC(2025, 0, 1, 9);
  const r = role(s);
  const filed = onFile(
    {
      id: 'req_AAAAAAAAAAAA',
      role: r,
      caller: caller('alice'),
      filing: { durationMs: s.duration, reason: null },
      ticket: null,
      idempotency: null,
    },
    now,
  );
  let row: RequestRow = { ...filed.row, seq: 1 };
  const reviews: ReviewRow[] = [];
  const finals: string[] = [];
  const apply = (change: Change, before: RequestRow, from: string = before.state) => {
    const t = change.transition;
    seen.transitions.add(t.id);
    expect(t.from, `${t.id} from`).toBe(from);
    expect(FINAL_STATES).not.toContain(from);
    expect(change.audit.map((a) => a.type)).toEqual([...t.audit]);
    expect(change.audit.length).toBeGreaterThan(0);
    row = { ...before, ...change.patch };
    expect(row.state, `${t.id} to`).toBe(t.to);
    if (FINAL_STATES.includes(row.state)) {
      finals.push(row.state);
      expect(row.ended_at).toBe(now);
    }
    if (change.review) reviews.push({ request_id: row.id, ...change.review });
  };
  apply(filed.change, row, 'new');
  for (const st of s.steps) {
    if (st.kind === 'wait') {
      now += st.ms;
      const swept = settle(row, now);
      if (swept) apply(swept, row);
      continue;
    }
    const settled = settle(row, now);
    if (settled) {
      apply(settled, row);
      continue;
    }
    const w = who(st.by, row);
    const event: PersonEvent =
      st.kind === 'review'
        ? { kind: 'review', who: w, body: { decision: st.decision } }
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
      change = decide(row, reviews, event, now);
    } catch (err) {
      // A refusal is an answer to the caller, never a bug.
      expect(err).toBeInstanceOf(HttpError);
      continue;
    }
    if (change === 'unchanged') continue;
    if (change.transition.event === 'mint') {
      // Never a credential outside an active window.
      expect(ACTIVE_STATES).toContain(row.state);
      expect(row.approved_at).not.toBeNull();
      expect(now).toBeGreaterThanOrEqual(row.approved_at!);
      expect(now).toBeLessThan(row.expires_at);
      expect(st.by).toBe('alice');
    }
    if (change.transition.event === 'review') expect(w.requester).toBe(false);
    apply(change, row);
  }
  expect(finals.length).toBeLessThanOrEqual(1);
}

describe('the request lifecycle', () => {
  it('holds its invariants over random histories', () => {
    const seen: Seen = { transitions: new Set() };
    fc.assert(
      fc.property(scenario, (s) => {
        run(s, seen);
      }),
      { numRuns: 1500 },
    );
    // Every row of the table is reachable: none is dead text in the diagram.
    expect([...seen.transitions].sort()).toEqual(ALL_TRANSITIONS.map((t) => t.id).sort());
  });

  it('refuses to mint a credential that would outlive the window', () => {
    const r = role({ approvals: 0, denials: 1, ttl: MIN });
    const now = Date.UTC(2025, 0, 1, 9);
    const { row } = onFile(
      {
        id: 'req_AAAAAAAAAAAA',
        role: r,
        caller: caller('alice'),
        filing: { durationMs: 10 * MIN, reason: null },
        ticket: null,
        idempotency: null,
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
    expect(() => decide(full, [], { kind: 'mint', who: who('alice', full), minted }, now)).toThrow(
      /outside its window/,
    );
  });

  it('docs/architecture.md shows the table as it is', () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../../docs/architecture.md'), 'utf8');
    expect(sectionOf(doc), 'run `npx tsx scripts/lifecycle-diagram.ts --write`').toBe(
      renderLifecycle(),
    );
  });
});
