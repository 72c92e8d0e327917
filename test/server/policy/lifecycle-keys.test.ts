import { describe, expect, it } from 'vitest';
import { inWindow, judgeRules } from '../../../src/server/policy/index.js';
import type { Caller } from '../../../src/server/policy/types.js';
import { brief, issuesOf, parse, role } from './helpers.js';

/**
 * The policy keys of the lifecycle (docs/policy.md): multi-party `approvals`, `extend`,
 * `break_glass`, `max_pending`, `require_review_comment`, `rules` and `on_call`, each read into
 * the model, and each mistake named with its line; then the rules judged as the broker judges
 * them, time zones and overnight windows included.
 */

const MIN = 60_000;
const H = 60 * MIN;

describe('the lifecycle keys: valid', () => {
  it('reads every key into the model', () => {
    const policy = parse(`max_pending: 4
on_call: { source: https://oncall.example.com/now.txt, refresh: 1m }
roles:
  prod:
    requesters: [group:developers]
    approvers: [group:leads, group:security]
    approvals: { group:leads: 1, group:security: 2 }
    max_duration: 1h
    require_review_comment: true
    extend: { max_total: 4h, approvals: 1, require_reason: true }
    break_glass: { review_within: 24h, max_per_week: 2 }
    rules:
      - name: incident
        decision: approve
        ticket: "INC-[0-9]+"
        max_duration: 30m
        within: { days: mon-fri, hours: 09:00-17:00, timezone: Europe/Berlin }
      - { name: night, decision: deny, outside: { hours: 07:00-22:00 } }
      - { name: primary, decision: approve, on_call: true, requesters: [group:sre] }
    credential: { audience: https://k8s.example.com }
  dev:
    requesters: [group:developers]
    approvers: [group:leads]
    max_pending: 10
    max_duration: 1h
    credential: { audience: https://dev.example.com }
`);
    expect(policy.onCall).toEqual({ source: 'https://oncall.example.com/now.txt', refreshMs: MIN });
    const prod = policy.roles.get('prod')!;
    expect(prod).toMatchObject({
      approvals: 3,
      approvalGroups: [
        { from: { kind: 'group', name: 'leads' }, count: 1 },
        { from: { kind: 'group', name: 'security' }, count: 2 },
      ],
      requireReviewComment: true,
      extend: { maxTotalMs: 4 * H, approvals: 1, approvalGroups: null, requireReason: true },
      breakGlass: { reviewWithinMs: 24 * H, maxPerWeek: 2 },
      maxPending: 4,
    });
    expect(prod.rules.map((r) => [r.name, r.decision])).toEqual([
      ['incident', 'approve'],
      ['night', 'deny'],
      ['primary', 'approve'],
    ]);
    expect(prod.rules[0]!.within).toMatchObject({
      days: [1, 2, 3, 4, 5],
      fromMinute: 9 * 60,
      toMinute: 17 * 60,
      timeZone: 'Europe/Berlin',
    });
    expect(policy.roles.get('dev')!.maxPending).toBe(10);
  });

  it('an extension needs the role’s own approvals by default, multi-party included', () => {
    const r = parse(
      role({
        approvers: '[group:leads, group:security]',
        approvals: '{ group:leads: 1, group:security: 1 }',
        extend: '{ max_total: 1h }',
      }),
    ).roles.get('deploy')!;
    expect(r.extend).toMatchObject({ approvals: 2, approvalGroups: r.approvalGroups });
    expect(parse(role()).roles.get('deploy')!).toMatchObject({
      extend: null,
      breakGlass: null,
      maxPending: 3,
      rules: [],
      requireReviewComment: false,
    });
  });
});

describe('the lifecycle keys: mistakes', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      'a group that approves but is not an approver',
      { approvals: '{ group:leads: 1, group:security: 1 }' },
      /`group:security` must also be listed in `approvers`/,
    ],
    ['an empty approvals mapping', { approvals: '{}' }, /names no group/],
    ['a count of 0 in a group', { approvals: '{ group:leads: 0 }' }, /from 1 to 100/],
    ['extend without max_total', { extend: '{ approvals: 1 }' }, /missing `max_total`/],
    ['extend as text', { extend: 'yes' }, /must be a mapping such as \{ max_total: 4h \}/],
    ['extend with a typo', { extend: '{ max_totl: 1h }' }, /did you mean `max_total`/],
    [
      'break_glass without a deadline',
      { break_glass: '{ max_per_week: 1 }' },
      /missing `review_within`/,
    ],
    [
      'break_glass over 30 days',
      { break_glass: '{ review_within: 31d, max_per_week: 1 }' },
      /longer than 30d/,
    ],
    ['max_pending 0', { max_pending: '0' }, /from 1 to 100/],
    ['a rule without a decision', { rules: '[{ name: x, on_call: true }]' }, /missing `decision`/],
    [
      'a rule deciding maybe',
      { rules: '[{ name: x, decision: maybe }]' },
      /must be approve or deny/,
    ],
    [
      'an unconditional approval rule',
      { rules: '[{ name: x, decision: approve }]' },
      /approves every request without a condition; use `approvals: 0`/,
    ],
    [
      'a pattern that backtracks exponentially',
      { rules: '[{ name: x, decision: approve, ticket: "(a+)+$" }]' },
      /repeats a repetition/,
    ],
    [
      'an invalid pattern',
      { rules: '[{ name: x, decision: approve, ticket: "INC-[" }]' },
      /not a valid regular expression/,
    ],
    [
      'an unknown time zone',
      { rules: '[{ name: x, decision: deny, within: { timezone: Mars/Olympus } }]' },
      /IANA time zone/,
    ],
    [
      'hours that are not hours',
      { rules: '[{ name: x, decision: deny, within: { hours: 9-17 } }]' },
      /must look like 09:00-17:00/,
    ],
    [
      'days that are not days',
      { rules: '[{ name: x, decision: deny, within: { days: weekdays } }]' },
      /must be days such as mon-fri/,
    ],
    [
      'two rules with one name',
      { rules: '[{ name: x, decision: deny }, { name: x, decision: deny }]' },
      /already the name of rules\[0\]/,
    ],
  ];
  it.each(cases)('%s', (_, overrides, message) => {
    const issues = issuesOf(role(overrides));
    expect(brief(issues).join('\n')).toMatch(message);
    expect(issues.every((i) => i.line !== null)).toBe(true);
  });

  it('on_call: a source, https or this machine, refreshed no faster than 10s', () => {
    const top = (v: string) => `on_call: ${v}\n${role()}`;
    expect(brief(issuesOf(top('{ refresh: 1m }'))).join()).toMatch(/missing `source`/);
    expect(brief(issuesOf(top('{ source: http://oncall.example.com/x }'))).join()).toMatch(/https/);
    expect(brief(issuesOf(top('{ source: oncall.txt, refresh: 1s }'))).join()).toMatch(
      /at least 10s/,
    );
    expect(parse(top('{ source: http://127.0.0.1:9/x }')).onCall?.source).toBe(
      'http://127.0.0.1:9/x',
    );
  });
});

describe('judging rules', () => {
  const caller = (groups: string[]): Caller => ({
    iss: 'i',
    sub: 'alice',
    name: null,
    email: null,
    emailVerified: true,
    groups,
    acr: null,
    authTime: null,
  });
  const policy = parse(
    role({
      rules: `
      - { name: night, decision: deny, outside: { hours: 07:00-22:00, timezone: Europe/Berlin } }
      - { name: incident, decision: approve, ticket: "INC-[0-9]+", max_duration: 30m }
      - { name: sre, decision: approve, on_call: true, requesters: [group:sre] }`,
    }),
  );
  const r = policy.roles.get('deploy')!;
  // 2025-01-15 is a Wednesday; Berlin is UTC+1 in January.
  const at = (utc: string) => Date.parse(`2025-01-15T${utc}Z`);
  const facts = {
    caller: caller(['developers']),
    durationMs: 15 * MIN,
    ticket: 'INC-7' as string | null,
    at: at('12:00:00'),
    onCall: false,
  };

  it('the first rule whose conditions all hold decides, with the reasons', () => {
    expect(judgeRules(r, facts).decided?.name).toBe('incident');
    expect(judgeRules(r, { ...facts, at: at('21:30:00') }).decided?.name).toBe('night');
    expect(judgeRules(r, { ...facts, at: at('05:59:00') }).decided?.name).toBe('night');
    expect(judgeRules(r, { ...facts, at: at('06:00:00') }).decided?.name).toBe('incident');
    expect(judgeRules(r, { ...facts, ticket: 'INC-7x' }).decided).toBeNull();
    expect(judgeRules(r, { ...facts, durationMs: 31 * MIN }).decided).toBeNull();
    const sre = { ...facts, ticket: null, caller: caller(['sre']) };
    expect(judgeRules(r, sre).decided).toBeNull();
    expect(judgeRules(r, { ...sre, onCall: true }).decided?.name).toBe('sre');
    const explained = judgeRules(r, { ...facts, ticket: null });
    expect(explained.verdicts.map((v) => v.checks)).toEqual([
      [
        {
          condition: 'it starts outside every day 07:00-22:00 Europe/Berlin',
          held: false,
        },
      ],
      [
        { condition: 'the ticket matches INC-[0-9]+', held: false },
        { condition: 'the duration is at most 30m', held: true },
      ],
      [
        { condition: 'the requester is group:sre', held: false },
        { condition: 'the requester is on call', held: false },
      ],
    ]);
  });

  it('windows: days in the zone, and overnight windows belong to the evening’s day', () => {
    const night = {
      days: [5],
      fromMinute: 22 * 60,
      toMinute: 6 * 60,
      timeZone: 'UTC',
      text: 'fri 22:00-06:00 UTC',
    };
    // 2025-01-17 is a Friday.
    expect(inWindow(night, Date.parse('2025-01-17T23:00:00Z'))).toBe(true);
    expect(inWindow(night, Date.parse('2025-01-18T05:59:00Z'))).toBe(true);
    expect(inWindow(night, Date.parse('2025-01-18T06:00:00Z'))).toBe(false);
    expect(inWindow(night, Date.parse('2025-01-18T23:00:00Z'))).toBe(false);
    expect(inWindow(night, Date.parse('2025-01-17T05:00:00Z'))).toBe(false);
    const tokyo = { days: [3], fromMinute: 0, toMinute: 24 * 60, timeZone: 'Asia/Tokyo', text: '' };
    // Wednesday 20:00 UTC is Thursday 05:00 in Tokyo.
    expect(inWindow(tokyo, Date.parse('2025-01-15T20:00:00Z'))).toBe(false);
    expect(inWindow(tokyo, Date.parse('2025-01-15T10:00:00Z'))).toBe(true);
  });
});
