import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RoleSummary } from '../../../src/api/schemas.js';
import {
  type Caller,
  canRequest,
  canReview,
  describeRole,
  formatPrincipal,
  matchesAny,
  type Principal,
  parsePrincipal,
  roleSummary,
} from '../../../src/server/policy/index.js';
import { parse } from './helpers.js';

function caller(overrides: Partial<Caller> = {}): Caller {
  return {
    iss: 'https://idp.example.com',
    sub: '00u-alice',
    name: 'Alice',
    email: 'alice@example.com',
    emailVerified: true,
    groups: ['developers'],
    acr: 'mfa',
    authTime: 1_700_000_000,
    ...overrides,
  };
}

const group = (name: string): Principal => ({ kind: 'group', name });
const user = (value: string): Principal => ({ kind: 'user', value });

describe('matchesAny', () => {
  it('matches group membership from the groups claim, exactly', () => {
    expect(matchesAny([group('developers')], caller())).toBe(true);
    expect(matchesAny([group('leads')], caller())).toBe(false);
    expect(matchesAny([group('Developers')], caller())).toBe(false);
    expect(matchesAny([group('developers')], caller({ groups: [] }))).toBe(false);
  });

  it('matches user:<sub> exactly', () => {
    expect(matchesAny([user('00u-alice')], caller())).toBe(true);
    expect(matchesAny([user('00U-ALICE')], caller())).toBe(false);
    expect(matchesAny([user('00u-alic')], caller())).toBe(false);
  });

  it('matches user:<email> case-insensitively, only when the email is verified', () => {
    expect(matchesAny([user('Alice@Example.COM')], caller())).toBe(true);
    expect(matchesAny([user('alice@example.com')], caller({ emailVerified: false }))).toBe(false);
    expect(matchesAny([user('alice@example.com')], caller({ email: null }))).toBe(false);
    expect(matchesAny([user('bob@example.com')], caller())).toBe(false);
  });

  it('never matches an email against an entry that is not an email', () => {
    // A caller whose (verified) email happened to equal someone's subject must not match it.
    expect(matchesAny([user('00u-bob')], caller({ email: '00u-bob' }))).toBe(false);
  });

  it('matches when any entry matches, and nothing for an empty list', () => {
    expect(matchesAny([group('leads'), user('00u-alice')], caller())).toBe(true);
    expect(matchesAny([], caller())).toBe(false);
  });

  it('agrees with set intersection for groups (property)', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    fc.assert(
      fc.property(fc.array(name), fc.array(name), (entries, groups) => {
        expect(matchesAny(entries.map(group), caller({ groups }))).toBe(
          entries.some((e) => groups.includes(e)),
        );
      }),
    );
  });
});

describe('canRequest, canReview and roleSummary', () => {
  const policy = parse(`roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]
    approvers: [group:leads, user:lee@example.com]
    approvals: 2
    max_duration: 1h
    pending_ttl: 30m
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}", KUBE_ROLE: "{{role}}" }
`);
  const role = policy.roles.get('prod-deploy')!;

  it('answers eligibility from requesters and approvers', () => {
    expect(canRequest(role, caller())).toBe(true);
    expect(canReview(role, caller())).toBe(false);
    const lee = caller({ sub: '00u-lee', email: 'lee@example.com', groups: [] });
    expect(canRequest(role, lee)).toBe(false);
    expect(canReview(role, lee)).toBe(true);
    expect(canReview(role, caller({ groups: ['leads', 'developers'] }))).toBe(true);
  });

  it('builds the RoleSummary of API v1', () => {
    const summary = roleSummary(role, caller());
    expect(summary).toEqual({
      name: 'prod-deploy',
      description: 'Deploy to production',
      default_duration: '15m',
      max_duration: '1h',
      pending_ttl: '30m',
      approvals: 2,
      denials: 1,
      require_reason: true,
      step_up: { acr: 'mfa', max_age: '5m' },
      requesters: ['group:developers'],
      approvers: ['group:leads', 'user:lee@example.com'],
      audience: 'https://k8s.prod.example.com',
      env: ['KUBE_TOKEN', 'KUBE_ROLE'],
      can_request: true,
      can_review: false,
      approvals_by: null,
      require_review_comment: false,
      extend: null,
      break_glass: null,
      max_pending: 3,
      rules: [],
      credential_ttl: '15m',
      use: {
        on_revoke: 'end',
        kill_at_expiry: false,
        audit_commands: 'name',
        audit_commands_required: false,
      },
    });
    expect(Value.Check(RoleSummary, summary)).toBe(true);
    const { can_request: _r, can_review: _v, ...rest } = summary;
    expect(describeRole(role)).toEqual(rest);
  });

  it('never puts env template values (which may embed fixed secrets) in the summary', () => {
    expect(JSON.stringify(roleSummary(role, caller()))).not.toContain('{{token}}');
  });
});

describe('parsePrincipal and formatPrincipal', () => {
  it('round-trips valid entries', () => {
    for (const text of [
      'group:leads',
      'user:lee@example.com',
      'user:00u1',
      'group:Platform Team',
      'group:/org/sre',
    ]) {
      const parsed = parsePrincipal(text);
      expect(parsed).toHaveProperty('principal');
      expect(formatPrincipal((parsed as { principal: Principal }).principal)).toBe(text);
    }
  });

  it('explains invalid entries', () => {
    expect(parsePrincipal('lee@example.com')).toEqual({
      error:
        '`lee@example.com` needs a kind: write `user:lee@example.com` (entries look like group:<name> or user:<sub or email>)',
    });
    expect(parsePrincipal(`user:${'x'.repeat(257)}`)).toEqual({
      error: 'the user name is over 256 characters',
    });
  });
});
