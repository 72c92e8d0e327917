import { describe, expect, it } from 'vitest';
import type { TrustedIssuer } from '../../src/server/federation/config.js';
import {
  basisOf,
  isOwnAccess,
  policyEdits,
  type RemovalRow,
  reminderAt,
  removalFor,
} from '../../src/server/governance/access-reviews/rules.js';
import { parsePolicy } from '../../src/server/policy/parse.js';
import type { Caller } from '../../src/server/policy/types.js';
import type { AccessReviewItemRow } from '../../src/server/store/schema.js';

/**
 * The pure rules of access reviews: which removal stops which caller (a person, an entry alone
 * or with another, a pipeline), that a removal lapses when the role's requesters (or the
 * pipeline's trusted issuer entry) change, what counts as one's own access, the policy edits a
 * campaign's result lists, and when the reminder goes.
 */

const DAY = 86_400_000;
const policy = (requesters: string) =>
  parsePolicy(
    `roles:\n  ro:\n    requesters: ${requesters}\n    approvers: [group:leads]\n    max_duration: 1h\n    credential: { audience: https://ro.example.com }\n`,
    'policy.yaml',
  );
const ROLE = policy('[group:developers, group:deployers, user:carol@example.com]').roles.get('ro')!;
const PIPE: TrustedIssuer = {
  name: 'github-deploy',
  issuer: 'https://token.actions.githubusercontent.com',
  audience: 'https://jit.example.com',
  jwksUri: undefined,
  algorithms: ['RS256'],
  conditions: [{ kind: 'values', claim: 'repository', values: ['acme/app'] }],
  subject: null,
  groups: ['deployers'],
  acr: null,
  sessionTtlMs: 900_000,
};

const caller = (sub: string, groups: string[], extra: Partial<Caller> = {}): Caller => ({
  iss: 'https://idp',
  sub,
  name: sub,
  email: `${sub}@example.com`,
  emailVerified: true,
  groups,
  acr: 'mfa',
  authTime: 0,
  ...extra,
});
const alice = caller('alice', ['developers']);
const both = caller('dana', ['developers', 'deployers']);
const carol = caller('carol', []);
const workload = caller('repo:acme/app', ['deployers'], {
  iss: 'https://jit.example.com',
  workload: { issuer: PIPE.issuer, entry: 'github-deploy' },
});

function removal(
  n: number,
  kind: AccessReviewItemRow['kind'],
  subject: string,
  over: Partial<RemovalRow> = {},
): RemovalRow {
  const row = {
    campaign_id: 'ar_111111111111',
    n,
    kind,
    subject,
    subject_key: kind === 'person' ? null : subject,
    subject_iss: kind === 'person' ? 'https://idp' : null,
    subject_sub: kind === 'person' ? subject : null,
    comment: 'why',
    decided_by: null,
    decided_at: 0,
    basis: null as string | null,
    ...over,
  };
  row.basis ??= basisOf(ROLE, row, [PIPE]);
  return row;
}

describe('which removal stops whom', () => {
  it('a person: only them, whatever entry names them', () => {
    const r = [removal(1, 'person', 'alice')];
    expect(removalFor(ROLE, alice, r, [PIPE])?.n).toBe(1);
    expect(removalFor(ROLE, both, r, [PIPE])).toBeNull();
  });

  it('an entry: those it alone made eligible', () => {
    const r = [removal(2, 'entry', 'group:developers')];
    expect(removalFor(ROLE, alice, r, [PIPE])?.n).toBe(2);
    // Dana is a deployer too; Carol is named by her own entry.
    expect(removalFor(ROLE, both, r, [PIPE])).toBeNull();
    expect(removalFor(ROLE, carol, r, [PIPE])).toBeNull();
    const all = [...r, removal(3, 'entry', 'group:deployers')];
    expect(removalFor(ROLE, both, all, [PIPE])?.n).toBeOneOf([2, 3]);
  });

  it('a pipeline: the workloads of that trusted issuer entry, not people in its group', () => {
    const r = [removal(4, 'pipeline', 'pipeline:github-deploy')];
    expect(removalFor(ROLE, workload, r, [PIPE])?.n).toBe(4);
    expect(removalFor(ROLE, both, r, [PIPE])).toBeNull();
  });

  it('lapses when the role’s requesters change, or the pipeline’s entry does', () => {
    const r = [removal(1, 'person', 'alice'), removal(4, 'pipeline', 'pipeline:github-deploy')];
    const edited = policy('[group:developers, group:deployers]').roles.get('ro')!;
    expect(removalFor(edited, alice, r, [PIPE])).toBeNull();
    // The same list in another order is the same policy.
    const reordered = policy(
      '[user:carol@example.com, group:deployers, group:developers]',
    ).roles.get('ro')!;
    expect(removalFor(reordered, alice, r, [PIPE])?.n).toBe(1);
    const widened = {
      ...PIPE,
      conditions: [
        { kind: 'values' as const, claim: 'repository', values: ['acme/app', 'acme/other'] },
      ],
    };
    expect(removalFor(ROLE, workload, r, [widened])).toBeNull();
    expect(removalFor(ROLE, workload, r, [])).toBeNull();
  });
});

describe('own access', () => {
  const item = (kind: AccessReviewItemRow['kind'], subject: string) => ({
    kind,
    subject_key: kind === 'person' ? null : subject,
    subject_iss: kind === 'person' ? 'https://idp' : null,
    subject_sub: kind === 'person' ? subject : null,
  });
  it('is the person, an entry that names you, the pipeline you came through', () => {
    expect(isOwnAccess(item('person', 'alice'), alice)).toBe(true);
    expect(isOwnAccess(item('person', 'alice'), carol)).toBe(false);
    expect(isOwnAccess(item('entry', 'group:developers'), alice)).toBe(true);
    expect(isOwnAccess(item('entry', 'user:carol@example.com'), carol)).toBe(true);
    expect(
      isOwnAccess(item('entry', 'user:carol@example.com'), { ...carol, emailVerified: false }),
    ).toBe(false);
    expect(isOwnAccess(item('pipeline', 'pipeline:github-deploy'), workload)).toBe(true);
    expect(isOwnAccess(item('pipeline', 'pipeline:github-deploy'), both)).toBe(false);
  });
});

describe('the result', () => {
  const row = (
    n: number,
    kind: AccessReviewItemRow['kind'],
    subject: string,
    via: string[],
  ): AccessReviewItemRow => ({
    campaign_id: 'ar_111111111111',
    n,
    role: 'ro',
    kind,
    subject,
    subject_key: kind === 'person' ? null : subject,
    subject_iss: null,
    subject_sub: null,
    subject_name: null,
    via: JSON.stringify(via),
    known: null,
    last_used_at: null,
    uses: 0,
    decision: 'remove',
    comment: 'why',
    decided_by: null,
    decided_at: 0,
    basis: 'b',
  });
  it('lists the edits that make the removals last, by where they are made', () => {
    const edits = policyEdits(
      [
        row(1, 'entry', 'user:carol@example.com', []),
        row(2, 'person', 'Alice', ['group:developers']),
        row(3, 'pipeline', 'pipeline:github-deploy', ['deployers']),
        { ...row(4, 'entry', 'group:developers', []), decision: 'keep' },
      ],
      policy('[group:developers, group:deployers, user:carol@example.com]').roles,
    );
    expect(edits.map((e) => [e.where, e.items])).toEqual([
      ['policy', [1]],
      ['identity_provider', [2]],
      ['broker_config', [3]],
    ]);
    expect(edits[0]!.change).toBe('remove user:carol@example.com from roles.ro.requesters');
  });

  it('reminds three days before the due date, or halfway for short campaigns', () => {
    expect(reminderAt(0, 14 * DAY)).toBe(11 * DAY);
    expect(reminderAt(0, 4 * DAY)).toBe(2 * DAY);
  });
});
