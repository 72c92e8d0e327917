import { describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../../src/api/schemas.js';
import { listItem, requestView, timeText } from '../../../src/server/pages/present.js';

/** What the pages say about a request in each state, including states added after this version. */

const NOW = Date.parse('2026-03-01T14:10:00Z');
const lee = { iss: 'https://idp.example.com', sub: 'lee', name: 'Lee Lead' };
const base: AccessRequest = {
  id: 'req_7Hq2Xn4pQr9a',
  role: 'prod-deploy',
  state: 'pending',
  requester: { iss: 'https://idp.example.com', sub: 'alice', name: 'Alice Developer' },
  duration: '15m',
  reason: 'hotfix\u202e INC-4211',
  ticket: null,
  created_at: '2026-03-01T14:00:00.000Z',
  expires_at: '2026-03-01T15:00:00.000Z',
  approvals_required: 1,
  reviews: [],
  approvers: ['group:leads'],
  fingerprint: '4068-2d49-0767-b0b9',
};

describe('requestView', () => {
  it('a pending request: progress, deadline, and other people’s text made visible', () => {
    const v = requestView(base, NOW, 'Deploy to production', undefined);
    expect(v.headline).toBe('Waiting for approval: 0 of 1 from group:leads; expires in 50m.');
    expect(v.until).toMatchObject({
      label: 'Expires',
      at: { text: '15:00 UTC', relative: 'in 50m' },
    });
    expect(v.filed).toMatchObject({ iso: '2026-03-01T14:00:00.000Z', text: '14:00 UTC' });
    // A right-to-left override would make the reason read differently from what was filed.
    expect(v.reason).toBe('hotfix\\u202e INC-4211');
  });

  it('says who decided and when, for each ending', () => {
    const at = '2026-03-01T14:02:00.000Z';
    const approved = requestView(
      {
        ...base,
        state: 'approved',
        expires_at: '2026-03-01T14:17:00.000Z',
        reviews: [{ reviewer: lee, decision: 'approve', comment: null, at }],
      },
      NOW,
      null,
      { type: 'request.approved', at, actor: lee },
    );
    expect(approved.headline).toBe(
      'Approved by Lee Lead at 14:02 UTC; valid until 14:17 UTC (in 7m).',
    );
    const auto = requestView({ ...base, state: 'approved', approvals_required: 0 }, NOW, null, {
      type: 'request.approved',
      at: base.created_at,
      actor: null,
    });
    expect(auto.headline).toMatch(/^Approved automatically at 14:00 UTC;/);
    const revoked = requestView({ ...base, state: 'revoked' }, NOW, null, {
      type: 'request.revoked',
      at: '2026-03-01T14:05:00.000Z',
      actor: lee,
    });
    expect(revoked.headline).toMatch(/^Revoked by Lee Lead at 14:05 UTC;/);
    const expired = requestView({ ...base, state: 'expired' }, NOW, null, {
      type: 'request.expired',
      at: '2026-03-01T15:00:00.000Z',
      actor: null,
    });
    expect(expired.headline).toBe('Expired at 15:00 UTC before enough approvals (0 of 1).');
  });

  it('shows a state it does not know by name, with its last change', () => {
    const v = requestView({ ...base, state: 'suspended' as AccessRequest['state'] }, NOW, null, {
      type: 'request.suspended',
      at: '2026-03-01T14:01:00.000Z',
      actor: lee,
    });
    expect(v).toMatchObject({ stateLabel: 'suspended', tone: 'other' });
    expect(v.headline).toBe('suspended since 14:01 UTC by Lee Lead.');
    const odd = listItem({ ...base, state: 'constructor' as AccessRequest['state'] }, NOW);
    expect(odd).toMatchObject({ state: 'constructor', tone: 'other' });
  });

  it('a scheduled start: approvable now while pending, then when it starts', () => {
    const starts_at = '2026-03-01T16:00:00.000Z';
    const pending = requestView({ ...base, starts_at }, NOW, null, undefined);
    expect(pending.headline).toBe(
      'Waiting for approval: 0 of 1 from group:leads; starts at 16:00 UTC (in 1h50m), approvable now; expires in 50m.',
    );
    const at = '2026-03-01T14:05:00.000Z';
    const scheduled = requestView(
      { ...base, state: 'scheduled', starts_at, expires_at: '2026-03-01T16:15:00.000Z' },
      NOW,
      null,
      { type: 'request.approved', at, actor: lee },
    );
    expect(scheduled).toMatchObject({ stateLabel: 'Scheduled', tone: 'scheduled' });
    expect(scheduled.headline).toBe(
      'Approved by Lee Lead at 14:05 UTC; starts at 16:00 UTC (in 1h50m) and is valid until 16:15 UTC. No credential before the start.',
    );
    const item = listItem({ ...base, state: 'scheduled', starts_at }, NOW);
    expect(item.detail).toBe('starts 16:00 UTC (in 1h50m); valid until 15:00 UTC');
  });

  it('names the rule that decided, break-glass use, multi-party progress and extensions', () => {
    const at = base.created_at;
    const byRule = requestView(
      { ...base, state: 'approved', decided_by_rule: 'on-call' },
      NOW,
      null,
      { type: 'request.approved', at, actor: null },
    );
    expect(byRule.headline).toBe(
      'Approved automatically by rule on-call at 14:00 UTC; valid until 15:00 UTC (in 50m).',
    );
    const deniedByRule = requestView(
      { ...base, state: 'denied', decided_by_rule: 'out-of-hours' },
      NOW,
      null,
      { type: 'request.denied', at, actor: null },
    );
    expect(deniedByRule.headline).toBe('Denied automatically by rule out-of-hours at 14:00 UTC.');
    const glass = requestView(
      {
        ...base,
        state: 'approved',
        break_glass: {
          review_by: '2026-03-02T14:00:00.000Z',
          overdue: false,
          verdict: null,
          reviewer: null,
          comment: null,
          reviewed_at: null,
        },
      },
      NOW,
      null,
      { type: 'request.approved', at, actor: null },
    );
    expect(glass.headline).toMatch(
      /^Taken as break-glass access, without approval, at 14:00 UTC; valid until/,
    );
    expect(
      listItem(
        {
          ...base,
          state: 'approved',
          break_glass: {
            review_by: '2026-03-02T14:00:00.000Z',
            overdue: true,
            verdict: null,
            reviewer: null,
            comment: null,
            reviewed_at: null,
          },
        },
        NOW,
      ).flag,
    ).toEqual({ text: 'break-glass: review overdue', tone: 'alert' });
    const approvals_by = [
      { from: 'group:leads', required: 1, approved: 1 },
      { from: 'group:security', required: 1, approved: 0 },
    ];
    const multi = requestView(
      { ...base, approvals_required: 2, approvals_by },
      NOW,
      null,
      undefined,
    );
    expect(multi.headline).toBe(
      'Waiting for approval: 1 of 1 from group:leads ✓, 0 of 1 from group:security; expires in 50m.',
    );
    const extended = requestView(
      {
        ...base,
        state: 'approved',
        extended: '30m',
        extension: {
          round: 2,
          state: 'pending',
          duration: '15m',
          reason: null,
          requested_at: at,
          approvals_required: 1,
          approvals_by: null,
          reviews: [],
          fingerprint: 'aaaa-bbbb-cccc-dddd',
        },
      },
      NOW,
      null,
      { type: 'request.approved', at, actor: lee },
    );
    expect(extended.headline).toBe(
      'Approved by Lee Lead at 14:00 UTC; valid until 15:00 UTC (in 50m), extended by 30m; 15m more asked, waiting for review.',
    );
    expect(
      listItem(
        {
          ...base,
          state: 'approved',
          extension: {
            round: 1,
            state: 'pending',
            duration: '15m',
            reason: null,
            requested_at: at,
            approvals_required: 1,
            approvals_by: null,
            reviews: [],
            fingerprint: 'x',
          },
        },
        NOW,
      ).detail,
    ).toBe('valid until 15:00 UTC (in 50m); asks for 15m more: 0 of 1 approval');
  });

  it('writes the date out when it is not today', () => {
    expect(timeText(Date.parse('2026-02-27T09:05:00Z'), NOW).text).toBe('2026-02-27 09:05 UTC');
  });
});
