import { describe, expect, it } from 'vitest';
import { docPath } from '../../../src/api/docs.js';
import { formatPolicyIssue, PolicyError, parsePolicy } from '../../../src/server/policy/index.js';
import { brief, issuesOf, parse, role } from './helpers.js';

const DESIGN_EXAMPLE = `roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]        # who may ask (IdP groups claim, or user:<sub|email>)
    approvers: [group:leads]              # who may review; a requester never reviews their own request
    approvals: 1                          # distinct approvers needed; one deny denies (configurable)
    default_duration: 15m
    max_duration: 1h                      # a longer ask is refused with a clear error, never silently cut
    pending_ttl: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }    # for requesting and for reviewing this role
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}" }
notify:
  - webhook: https://hooks.example.com/jit   # JSON events; Slack-compatible text field
`;

const MIN = 60_000;

describe('parsePolicy: a valid policy', () => {
  it('reads the example of DESIGN.md into the model', () => {
    const policy = parse(DESIGN_EXAMPLE);
    expect([...policy.roles.keys()]).toEqual(['prod-deploy']);
    expect(policy.roles.get('prod-deploy')).toEqual({
      name: 'prod-deploy',
      description: 'Deploy to production',
      requesters: [{ kind: 'group', name: 'developers' }],
      approvers: [{ kind: 'group', name: 'leads' }],
      approvals: 1,
      denials: 1,
      defaultDurationMs: 15 * MIN,
      maxDurationMs: 60 * MIN,
      pendingTtlMs: 60 * MIN,
      requireReason: true,
      stepUp: { acr: 'mfa', maxAgeMs: 5 * MIN },
      credential: {
        audience: 'https://k8s.prod.example.com',
        env: { KUBE_TOKEN: '{{token}}' },
        ttlMs: 15 * MIN,
      },
      use: {
        onRevoke: 'end',
        killAtExpiry: false,
        auditCommands: 'name',
        auditCommandsRequired: false,
      },
      approvalGroups: null,
      requireReviewComment: false,
      extend: null,
      breakGlass: null,
      maxPending: 3,
      rules: [],
    });
    expect(policy.notify).toEqual([
      {
        kind: 'webhook',
        webhook: 'https://hooks.example.com/jit',
        format: 'standard',
        secret: null,
        roles: null,
        events: null,
      },
    ]);
  });

  it('fills in the documented defaults', () => {
    const r = parse(role()).roles.get('deploy')!;
    expect(r).toMatchObject({
      description: null,
      approvals: 1,
      denials: 1,
      defaultDurationMs: 15 * MIN,
      pendingTtlMs: 60 * MIN,
      requireReason: false,
      stepUp: null,
      credential: { env: {} },
    });
    expect(parse(role()).notify).toEqual([]);
  });

  it('defaults default_duration to max_duration when that is shorter than 15m', () => {
    expect(parse(role({ max_duration: '10m' })).roles.get('deploy')!.defaultDurationMs).toBe(
      10 * MIN,
    );
  });

  it('keeps roles in file order and accepts every allowed role name shape', () => {
    const names = ['zeta', 'a', '0ops', 'db.read', 'k8s_admin-2', `a${'b'.repeat(62)}`];
    const text = `roles:\n${names
      .map(
        (n) =>
          `  ${n}:\n    requesters: [group:g]\n    approvers: [group:h]\n    max_duration: 1h\n    credential: { audience: a }`,
      )
      .join('\n')}\n`;
    expect([...parse(text).roles.keys()]).toEqual(names);
  });

  it('accepts approvals: 0 (auto-approve), user entries and group names with spaces', () => {
    const r = parse(
      role({
        approvals: '0',
        requesters: '[user:alice@example.com, "group:Platform Team", user:00u1abcd]',
      }),
    ).roles.get('deploy')!;
    expect(r.approvals).toBe(0);
    expect(r.requesters).toEqual([
      { kind: 'user', value: 'alice@example.com' },
      { kind: 'group', name: 'Platform Team' },
      { kind: 'user', value: '00u1abcd' },
    ]);
  });

  it('accepts null description, env and notify as "none"', () => {
    const policy = parse(
      `${role({ description: '', credential: '{ audience: a, env: }' })}notify:\n`,
    );
    expect(policy.roles.get('deploy')).toMatchObject({
      description: null,
      credential: { audience: 'a', env: {} },
    });
    expect(policy.notify).toEqual([]);
  });

  it('ignores top-level x- keys, which hold anchors', () => {
    const text = `x-common: &common
  requesters: [group:developers]
  approvers: [group:leads]
  credential: { audience: https://k8s.example.com }
roles:
  one:
    <<: *common
    max_duration: 1h
  two:
    <<: *common
    approvers: [group:sre]
    max_duration: 2h
`;
    const policy = parse(text);
    expect(policy.roles.get('one')!.approvers).toEqual([{ kind: 'group', name: 'leads' }]);
    // explicit keys win over merged ones
    expect(policy.roles.get('two')!.approvers).toEqual([{ kind: 'group', name: 'sre' }]);
    expect(policy.roles.get('two')!.maxDurationMs).toBe(120 * MIN);
  });

  it('takes earlier merge sources over later ones and resolves plain aliases', () => {
    const text = `x-a: &a { approvals: 2 }
x-b: &b { approvals: 3, denials: 2 }
x-leads: &leads [group:leads]
roles:
  r:
    <<: [*a, *b]
    requesters: *leads
    approvers: *leads
    max_duration: 1h
    credential: { audience: a }
`;
    expect(parse(text).roles.get('r')).toMatchObject({
      approvals: 2,
      denials: 2,
      requesters: [{ kind: 'group', name: 'leads' }],
    });
  });

  it('reads a file that starts with a byte order mark and env templates with spaces', () => {
    const r = parse(
      `\ufeff${role({ credential: '{ audience: a, env: { TOKEN: "Bearer {{ token }}" } }' })}`,
    ).roles.get('deploy')!;
    expect(r.credential.env).toEqual({ TOKEN: 'Bearer {{ token }}' });
  });

  it('checks step_up.acr against the broker levels when given', () => {
    const text = role({ step_up: '{ acr: mfa, max_age: 5m }' });
    expect(
      parsePolicy(text, 'p', { acrLevels: ['pwd', 'mfa'] }).roles.get('deploy')!.stepUp,
    ).toEqual({
      acr: 'mfa',
      maxAgeMs: 5 * MIN,
    });
    expect(
      brief(
        issuesOf(role({ step_up: '{ acr: mfaa, max_age: 5m }' }), { acrLevels: ['pwd', 'mfa'] }),
      ),
    ).toEqual([
      "7:21 roles.deploy.step_up.acr: `mfaa` is not one of the broker's acr_levels (pwd, mfa); did you mean `mfa`?",
    ]);
  });
});

describe('parsePolicy: the top level', () => {
  it.each([
    ['', `1:1 : the policy is empty: it needs a \`roles\` mapping (see ${docPath('policy.md')})`],
    [
      '# just a comment\n',
      `1:1 : the policy is empty: it needs a \`roles\` mapping (see ${docPath('policy.md')})`,
    ],
    ['roles', '1:1 : the top level must be a mapping with `roles`, not text (`roles`)'],
    ['- roles\n', '1:1 : the top level must be a mapping with `roles`, not a list'],
    ['notify: []\n', '1:1 roles: missing `roles`: a mapping of role names to their rules'],
    ['roles: {}\n', '1:1 roles: `roles` defines no roles'],
    [
      'roles: [a]\n',
      '1:8 roles: `roles` must be a mapping of role names to their rules, not a list',
    ],
  ])('rejects %j', (text, expected) => {
    expect(brief(issuesOf(text))).toEqual([expected]);
  });

  it('names the key a typo meant, and does not also call it missing', () => {
    expect(brief(issuesOf(`${role()}notfy: []\n`))).toEqual([
      '7:1 notfy: unknown key `notfy`; did you mean `notify`?',
    ]);
    expect(brief(issuesOf(role().replace('roles:', 'rolse:')))).toEqual([
      '1:1 rolse: unknown key `rolse`; did you mean `roles`?',
    ]);
    expect(brief(issuesOf(`${role()}version: 2\n`))).toEqual([
      '7:1 version: unknown key `version` (allowed here: roles, notify, max_pending, on_call)',
    ]);
  });
});

describe('parsePolicy: roles', () => {
  it.each([
    ['Prod', 'role name `Prod` must be lower-case: `prod`'],
    ['-prod', 'role name `-prod` is not allowed'],
    ['_prod', 'role name `_prod` is not allowed'],
    ['"prod deploy"', 'role name `prod deploy` is not allowed'],
    [`a${'b'.repeat(63)}`, 'at most 63 characters'],
  ])('rejects the role name %s', (name, message) => {
    const issues = issuesOf(role().replace('deploy:', `${name}:`));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ line: 2, column: 3 });
    expect(issues[0]!.message).toContain(message);
  });

  it('rejects a role that is not a mapping', () => {
    expect(brief(issuesOf('roles:\n  deploy:\n'))).toEqual([
      '2:10 roles.deploy: a role must be a mapping of its rules (requesters, approvers, max_duration, credential, …), not empty',
    ]);
  });

  it('reports every missing required key at the role', () => {
    expect(brief(issuesOf('roles:\n  deploy:\n    description: x\n'))).toEqual([
      '2:3 roles.deploy.requesters: missing `requesters`: who may ask for this role, e.g. [group:developers]',
      '2:3 roles.deploy.approvers: missing `approvers`: who may approve requests, e.g. [group:leads]',
      '2:3 roles.deploy.max_duration: missing `max_duration`: the longest a credential may last, e.g. 1h',
      '2:3 roles.deploy.credential: missing `credential`: at least its `audience`, e.g. { audience: https://k8s.example.com }',
    ]);
  });

  it('says which key a misspelt role key meant instead of calling it missing', () => {
    expect(brief(issuesOf(role({ approvers: undefined, aprovers: '[group:leads]' })))).toEqual([
      '6:5 roles.deploy.aprovers: unknown key `aprovers`; did you mean `approvers`?',
    ]);
    expect(brief(issuesOf(role({ 'max-duration': '1h', max_duration: undefined })))).toEqual([
      '6:5 roles.deploy.max-duration: unknown key `max-duration`; did you mean `max_duration`?',
    ]);
    expect(brief(issuesOf(role({ colour: 'red' })))[0]).toContain(
      'unknown key `colour` (allowed here: description, requesters, approvers,',
    );
  });

  it('rejects a description that is not text or too long', () => {
    expect(brief(issuesOf(role({ description: '42' })))).toEqual([
      '7:18 roles.deploy.description: must be text, not a number (42) (quote it if it looks like a number)',
    ]);
    expect(issuesOf(role({ description: 'x'.repeat(1001) }))[0]!.message).toBe(
      'is over 1000 characters',
    );
  });
});

describe('parsePolicy: requesters and approvers', () => {
  it.each([
    [
      '[]',
      'must name at least one principal (entries look like group:<name> or user:<sub or email>)',
    ],
    ['group:leads', 'must be a list such as [group:leads], not text (`group:leads`)'],
    ['{ group: leads }', 'must be a list such as [group:leads], not a mapping'],
  ])('rejects approvers: %s', (value, message) => {
    expect(issuesOf(role({ approvers: value })).map((i) => i.message)).toEqual([message]);
  });

  it.each([
    ['lee@example.com', '`lee@example.com` needs a kind: write `user:lee@example.com`'],
    ['leads', '`leads` needs a kind: write `group:leads`'],
    ['groups:leads', 'unknown kind `groups:`; did you mean `group:leads`?'],
    ['User:lee', 'unknown kind `User:`; did you mean `user:lee`?'],
    ['team:leads', 'unknown kind `team:` (entries look like group:<name> or user:<sub or email>)'],
    ['"group:"', '`group:` names no group'],
    ['"user: lee"', 'has spaces around the user name'],
    ['"group:*"', 'wildcards are not supported'],
    ['"user:lee\\u202e"', 'control or invisible characters'],
    [
      '42',
      'must be text (entries look like group:<name> or user:<sub or email>), not a number (42)',
    ],
    ['[group:a]', 'must be text'],
  ])('rejects the entry %s', (entry, message) => {
    const issues = issuesOf(role({ approvers: `[group:ok, ${entry}]` }));
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe('roles.deploy.approvers[1]');
    expect(issues[0]!.message).toContain(message);
  });

  it('rejects an entry listed twice, emails compared without case', () => {
    expect(
      brief(
        issuesOf(role({ requesters: '[user:Lee@Example.com, group:a, user:lee@example.com]' })),
      ),
    ).toEqual(['3:49 roles.deploy.requesters[2]: `user:lee@example.com` is already listed at [0]']);
    // subjects are compared exactly: two different subjects
    expect(
      parse(role({ requesters: '[user:ABC, user:abc]' })).roles.get('deploy')!.requesters,
    ).toHaveLength(2);
  });
});

describe('parsePolicy: approvals and denials', () => {
  it.each([
    [
      'approvals',
      '-1',
      'must be a whole number from 0 to 100, not -1 (0 approves requests at once)',
    ],
    ['approvals', '1.5', 'must be a whole number from 0 to 100, not 1.5'],
    ['approvals', '101', 'must be a whole number from 0 to 100, not 101'],
    ['approvals', '"2"', 'must be a number: write 2 without quotes'],
    ['approvals', 'true', 'must be a whole number from 0 to 100, not true'],
    ['approvals', 'two', 'must be a whole number from 0 to 100, not text (`two`)'],
    ['denials', '0', 'must be a whole number from 1 to 100, not 0 (1: one deny denies)'],
    ['denials', '[1]', 'must be a whole number from 1 to 100, not a list'],
  ])('rejects %s: %s', (key, value, message) => {
    expect(issuesOf(role({ [key]: value })).map((i) => `${i.path}: ${i.message}`)).toEqual([
      `roles.deploy.${key}: ${message}`,
    ]);
  });

  it('rejects thresholds that user-only approvers can never reach', () => {
    expect(
      brief(issuesOf(role({ approvers: '[user:a@x.io, user:b@x.io]', approvals: '3' }))),
    ).toEqual([
      '4:16 roles.deploy.approvers: lists 2 approvers but approvals is 3: requests could never be approved (add approvers or a group, or lower approvals)',
    ]);
    expect(issuesOf(role({ approvers: '[user:a@x.io]', denials: '2' }))[0]!.message).toContain(
      'lists 1 approver but denials is 2: requests could never be denied',
    );
  });

  it('rejects a role whose only approvers include the requester, short of the threshold', () => {
    expect(
      issuesOf(
        role({
          requesters: '[user:a@x.io]',
          approvers: '[user:A@x.io, user:b@x.io]',
          approvals: '2',
        }),
      )[0]!.message,
    ).toBe(
      '`user:a@x.io` may request this role but nobody reviews their own request, which leaves 1 of the 2 approvals needed',
    );
  });

  it('accepts any threshold with a group among the approvers, and unreachable denials when auto-approving', () => {
    expect(
      parse(role({ approvers: '[user:a@x.io, group:leads]', approvals: '5', denials: '5' })).roles
        .size,
    ).toBe(1);
    expect(
      parse(role({ approvers: '[user:a@x.io]', approvals: '0', denials: '3' })).roles.size,
    ).toBe(1);
    expect(
      parse(role({ requesters: '[user:a]', approvers: '[user:a, user:b]', approvals: '1' })).roles
        .size,
    ).toBe(1);
  });
});

describe('parsePolicy: durations', () => {
  it.each([
    ['max_duration', '15x', '"15x" is not a duration: durations look like 15m, 1h30m, 90s or 2d'],
    ['max_duration', '0m', '"0m" is zero: durations must be longer than 0s'],
    ['max_duration', '-5m', '"-5m" is negative: durations must be positive'],
    ['max_duration', '60', '`60` has no unit: write a duration such as 15m, 1h30m or 90s'],
    ['max_duration', '[1h]', 'must be a duration such as 15m or 1h30m, not a list'],
    [
      'max_duration',
      '8d',
      '8d is longer than 7d, the most jitctl allows: access that long is standing access',
    ],
    ['pending_ttl', '99999h', '99999h is longer than 7d'],
    ['pending_ttl', '1 h', '"1 h" is not a duration'],
    ['default_duration', '2h', 'default_duration 2h is longer than max_duration 1h'],
    ['default_duration', '', 'must be a duration such as 15m or 1h30m, not empty'],
  ])('rejects %s: %s', (key, value, message) => {
    const issues = issuesOf(role({ [key]: value }));
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe(`roles.deploy.${key}`);
    expect(issues[0]!.message).toContain(message);
  });
});

describe('parsePolicy: require_reason and step_up', () => {
  it.each([
    ['yes', 'must be true or false, not text (`yes`) (YAML 1.2 reads yes/no/on/off as text)'],
    ['"true"', 'must be true or false, not text (`true`)'],
    ['1', 'must be true or false, not a number (1)'],
  ])('rejects require_reason: %s', (value, message) => {
    expect(issuesOf(role({ require_reason: value })).map((i) => i.message)).toEqual([message]);
  });

  it('accepts YAML 1.1 booleans under a %YAML 1.1 directive', () => {
    expect(
      parse(`%YAML 1.1\n---\n${role({ require_reason: 'yes' })}`).roles.get('deploy')!
        .requireReason,
    ).toBe(true);
  });

  it.each([
    [
      'mfa',
      'must be a mapping such as { acr: mfa, max_age: 5m }, not text (`mfa`) (leave `step_up` out to require no step-up)',
    ],
    [
      '',
      'must be a mapping such as { acr: mfa, max_age: 5m }, not empty (leave `step_up` out to require no step-up)',
    ],
  ])('rejects step_up: %j', (value, message) => {
    expect(issuesOf(role({ step_up: value })).map((i) => i.message)).toEqual([message]);
  });

  it('rejects step_up with missing, unknown or bad keys', () => {
    expect(brief(issuesOf(role({ step_up: '{ max_age: 5m }' })))).toEqual([
      '7:5 roles.deploy.step_up.acr: missing `acr`: the level required, e.g. mfa',
    ]);
    expect(brief(issuesOf(role({ step_up: '{ acr: mfa }' })))).toEqual([
      '7:5 roles.deploy.step_up.max_age: missing `max_age`: how recent the sign-in must be, e.g. 5m',
    ]);
    expect(brief(issuesOf(role({ step_up: '{ acr: mfa, max_age: 5m, maxage: 1m }' })))).toEqual([
      '7:39 roles.deploy.step_up.maxage: unknown key `maxage`; did you mean `max_age`?',
    ]);
    expect(brief(issuesOf(role({ step_up: '{ acr: "m f a", max_age: soon }' })))).toEqual([
      '7:21 roles.deploy.step_up.acr: `m f a` contains spaces or control characters',
      '7:39 roles.deploy.step_up.max_age: "soon" is not a duration: durations look like 15m, 1h30m, 90s or 2d',
    ]);
  });
});

describe('parsePolicy: credential', () => {
  it('requires a mapping with an audience', () => {
    expect(issuesOf(role({ credential: 'https://k8s' })).map((i) => i.message)).toEqual([
      'must be a mapping such as { audience: https://k8s.example.com }, not text (`https://k8s`)',
    ]);
    expect(brief(issuesOf(role({ credential: '{ env: {} }' })))).toEqual([
      '6:5 roles.deploy.credential.audience: missing `audience`: the system that accepts the credential (a URL or identifier)',
    ]);
    expect(issuesOf(role({ credential: '{ audience: "" }' }))[0]!.message).toBe(
      'must be a URL or identifier, not empty text',
    );
    expect(issuesOf(role({ credential: '{ audience: "a b" }' }))[0]!.message).toBe(
      '`a b` contains spaces or control characters',
    );
    expect(issuesOf(role({ credential: '{ audience: "https://[bad" }' }))[0]!.message).toBe(
      'is not a valid URL',
    );
    expect(issuesOf(role({ credential: '{ audience: a, secret: x }' }))[0]!.message).toBe(
      'unknown key `secret` (allowed here: audience, env, ttl)',
    );
  });

  it.each([
    ['kube_token: "{{token}}"', '`kube_token` is not a valid variable name'],
    ['1TOKEN: "{{token}}"', '`1TOKEN` is not a valid variable name'],
    [
      'JITCTL_TOKEN: "{{token}}"',
      '`JITCTL_TOKEN` is reserved: jitctl sets JITCTL_* variables itself',
    ],
    ['LD_PRELOAD: /tmp/x.so', '`LD_PRELOAD` is not allowed: it changes which programs run'],
    ['PATH: /tmp', '`PATH` is not allowed'],
    ['NODE_OPTIONS: "--require x"', '`NODE_OPTIONS` is not allowed'],
    ['TOKEN: 42', 'must be a text template such as "{{token}}", not a number (42)'],
    ['TOKEN: "{{tokn}}"', 'unknown placeholder `{{tokn}}`; did you mean `{{token}}`?'],
    [
      'TOKEN: "{{password}}"',
      'unknown placeholder `{{password}}` (known: {{token}}, {{role}}, {{request_id}}, {{expires_at}})',
    ],
    ['TOKEN: "Bearer {{token}"', '`{{` at character 8 is never closed with `}}`'],
    ['TOKEN: "Bearer token}}"', '`}}` at character 13 has no matching `{{`'],
    ['TOKEN: "{{ {{token}} }}"', '`{{` at character 1 is never closed with `}}`'],
  ])('rejects env %s', (entry, message) => {
    const issues = issuesOf(role({ credential: `{ audience: a, env: { ${entry} } }` }));
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toMatch(/^roles\.deploy\.credential\.env\./);
    expect(issues[0]!.message).toContain(message);
  });

  it('rejects env that is not a mapping', () => {
    expect(issuesOf(role({ credential: '{ audience: a, env: [TOKEN] }' }))[0]!.message).toBe(
      'must be a mapping such as { KUBE_TOKEN: "{{token}}" }, not a list',
    );
  });
});

describe('parsePolicy: notify', () => {
  it('accepts https anywhere and http on loopback only', () => {
    const hooks = [
      'https://hooks.slack.com/services/T0/B0/secret',
      'http://127.0.0.1:9000/hook',
      'http://localhost/hook',
      'http://[::1]:8080/',
    ];
    const text = `${role()}notify:\n${hooks.map((h) => `  - webhook: ${h}`).join('\n')}\n`;
    expect(parse(text).notify).toEqual(
      hooks.map((webhook) => ({
        kind: 'webhook',
        webhook,
        format: 'standard',
        secret: null,
        roles: null,
        events: null,
      })),
    );
  });

  it.each([
    [
      '- webhook: http://hooks.example.com/x',
      'must use https:// (plain http:// only for a receiver on this machine',
    ],
    ['- webhook: ftp://example.com/x', 'must be an https:// URL, not ftp:'],
    ['- webhook: hooks.example.com', 'is not a URL: write https://host/path'],
    ['- webhook: https://user:pw@example.com/', 'must not carry a user name or password'],
    [
      '- https://example.com/x',
      'each entry is { webhook: https://… } or { email: approvers }, not text',
    ],
    ['- webhook: https://example.com/a b', 'the value contains spaces or control characters'],
    [
      '- { url: https://example.com/x }',
      'unknown key `url` (allowed here: webhook, email, format, secret, roles, events)',
    ],
    ['- { webhok: https://example.com/x }', 'unknown key `webhok`; did you mean `webhook`?'],
    ['- webhook: [https://example.com/x]', 'must be an https:// URL, not a list'],
  ])('rejects %s', (entry, message) => {
    const issues = issuesOf(`${role()}notify:\n  ${entry}\n`);
    const messages = issues.map((i) => i.message).join('\n');
    expect(messages).toContain(message);
    // A webhook URL's path is its secret: no message quotes it.
    expect(messages).not.toMatch(/example\.com\/(x|a b)/);
    expect(issues[0]!.line).toBe(8);
  });

  it('rejects notify that is not a list and a webhook listed twice', () => {
    expect(issuesOf(`${role()}notify: { webhook: https://a.example }\n`)[0]!.message).toContain(
      'must be a list such as [{ webhook: https://hooks.example.com/jit }, { email: approvers }], not a mapping',
    );
    expect(
      brief(
        issuesOf(
          `${role()}notify:\n  - webhook: https://a.example/x\n  - webhook: https://a.example/x\n`,
        ),
      ),
    ).toEqual(['9:14 notify[1].webhook: the same webhook is already listed at notify[0]']);
  });
});

describe('parsePolicy: YAML', () => {
  it('reports syntax errors with their line and column', () => {
    const issues = issuesOf(
      'roles:\n  deploy:\n    approvers: [group:leads\n    max_duration: 1h\n',
    );
    expect(issues.length).toBeGreaterThan(0);
    expect(issues[0]).toMatchObject({ file: 'policy.yaml', path: '' });
    expect(issues[0]!.line).toBeGreaterThanOrEqual(3);
    const tab = issuesOf('roles:\n\tdeploy: {}\n');
    expect(tab[0]).toMatchObject({
      line: 2,
      column: 1,
      message: 'Tabs are not allowed as indentation',
    });
  });

  it('rejects duplicate keys, naming both lines, and still checks the rest', () => {
    expect(
      brief(issuesOf(role({ max_duration: '1h\n    max_duration: 2h', approvals: '-1' }))),
    ).toEqual([
      '6:5 roles.deploy.max_duration: duplicate key `max_duration` (first at line 5)',
      '8:16 roles.deploy.approvals: must be a whole number from 0 to 100, not -1 (0 approves requests at once)',
    ]);
    expect(brief(issuesOf(`${role()}roles: {}\n`))[0]).toBe(
      '7:1 roles: duplicate key `roles` (first at line 1)',
    );
  });

  it('rejects a second document, custom tags and binary values', () => {
    expect(issuesOf(`${role()}---\nroles: {}\n`)[0]).toMatchObject({
      line: 7,
      message: 'a policy file holds one YAML document (found a second `---`)',
    });
    expect(issuesOf(role({ description: '!vault secret' }))[0]!.message).toBe(
      'Unresolved tag: !vault (custom tags are not supported)',
    );
    expect(issuesOf(role({ description: '!!binary aGVsbG8=' }))[0]!.message).toBe(
      'values tagged `tag:yaml.org,2002:binary` are not supported here',
    );
  });

  it('rejects aliases with no anchor, aliases that contain themselves and bad merges', () => {
    expect(issuesOf(role({ approvers: '*nobody' }))[0]!.message).toBe(
      'alias `*nobody` has no anchor',
    );
    expect(issuesOf(role({ approvers: '&me [group:a, *me]' }))[0]!.message).toBe(
      'alias `*me` refers to a value that contains it',
    );
    expect(issuesOf(`x-list: &l [a]\n${role({ '<<': '*l' })}`).map((i) => i.message)).toContain(
      '`<<` merges mappings only (`<<: *defaults` or `<<: [*a, *b]`)',
    );
  });

  it('stops alias expansion bombs with a clear issue instead of hanging', () => {
    const levels = [
      'x-a0: &a0 [group:a, group:b, group:c, group:d, group:e, group:f, group:g, group:h, group:i, group:j]',
    ];
    for (let i = 1; i < 10; i++) {
      levels.push(`x-a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    }
    const text = `${levels.join('\n')}\n${role({ requesters: '*a9' })}`;
    const issues = issuesOf(text);
    expect(issues.map((i) => i.message)).toContain(
      'the file expands to more than 100000 values (aliases nested too deep?)',
    );
  });

  it('resolves 20,000 aliases of one anchor in linear time (it was quadratic: minutes)', () => {
    const many = `x-a: &a group:leads\nx-many: [${Array(20_000).fill('*a').join(', ')}]\n`;
    const t0 = performance.now();
    const policy = parse(`${many}${role({ approvers: '[*a]' })}`);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(policy.roles.get('deploy')!.approvers).toEqual([{ kind: 'group', name: 'leads' }]);
  });

  it('an alias names the closest anchor of that name before it, as YAML says', () => {
    const requesters = (text: string) => parse(text).roles.get('deploy')!.requesters;
    const one = 'x-one: &a [group:one]\n';
    const two = 'x-two: &a [group:two]\n';
    expect(requesters(`${one}${two}${role({ requesters: '*a' })}`)).toEqual([
      { kind: 'group', name: 'two' },
    ]);
    expect(requesters(`${one}${role({ requesters: '*a' })}\n${two}`)).toEqual([
      { kind: 'group', name: 'one' },
    ]);
  });

  it('rejects nesting deeper than 64 levels', () => {
    const deep = `${'['.repeat(80)}${']'.repeat(80)}`;
    expect(issuesOf(role({ description: deep })).map((i) => i.message)).toContain(
      'nested more than 64 levels deep',
    );
  });

  it('points problems in an aliased value at the alias', () => {
    const text = `x-bad: &bad "15x"\n${role({ max_duration: '*bad' })}`;
    expect(brief(issuesOf(text))).toEqual([
      '6:19 roles.deploy.max_duration: "15x" is not a duration: durations look like 15m, 1h30m, 90s or 2d',
    ]);
  });
});

describe('parsePolicy: collecting issues', () => {
  it('reports every problem of a file at once, in line order, with lines and paths', () => {
    const text = `roles:
  prod-deploy:
    requesters: [developers]
    approvers: [group:leads]
    approvals: two
    max_duration: 15x
    require_reason: yes
    credential:
      audience: https://k8s.example.com
      env: { JITCTL_TOKEN: "{{token}}" }
  db-read:
    requesters: [group:developers]
    aprovers: [group:dba]
    max_duration: 1h
    credential: { audience: postgres }
notify:
  - webhook: http://hooks.example.com/jit
`;
    let error: unknown;
    try {
      parsePolicy(text, 'policy.yaml');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PolicyError);
    expect((error as Error).message.split('\n')).toEqual([
      'policy.yaml:3:18: roles.prod-deploy.requesters[0]: `developers` needs a kind: write `group:developers` (entries look like group:<name> or user:<sub or email>)',
      'policy.yaml:5:16: roles.prod-deploy.approvals: must be a whole number from 0 to 100, not text (`two`)',
      'policy.yaml:6:19: roles.prod-deploy.max_duration: "15x" is not a duration: durations look like 15m, 1h30m, 90s or 2d',
      'policy.yaml:7:21: roles.prod-deploy.require_reason: must be true or false, not text (`yes`) (YAML 1.2 reads yes/no/on/off as text)',
      'policy.yaml:10:14: roles.prod-deploy.credential.env.JITCTL_TOKEN: `JITCTL_TOKEN` is reserved: jitctl sets JITCTL_* variables itself',
      'policy.yaml:13:5: roles.db-read.aprovers: unknown key `aprovers`; did you mean `approvers`?',
      'policy.yaml:17:14: notify[0].webhook: must use https:// (plain http:// only for a receiver on this machine: 127.0.0.1, ::1, localhost)',
    ]);
  });

  it('quotes odd keys in paths so they stay unambiguous', () => {
    expect(
      issuesOf(
        role().replace('deploy:', '"db.read":').replace('max_duration: 1h', 'max_duration: x'),
      )[0]!.path,
    ).toBe('roles["db.read"].max_duration');
  });

  it('formats issues without a line or a path', () => {
    expect(
      formatPolicyIssue({
        file: 'p.yaml',
        line: null,
        column: null,
        path: '',
        message: 'no such file',
      }),
    ).toBe('p.yaml: no such file');
    expect(
      formatPolicyIssue({ file: 'p.yaml', line: 3, column: 7, path: 'roles.x', message: 'bad' }),
    ).toBe('p.yaml:3:7: roles.x: bad');
  });

  it('refuses a file over 1 MiB before parsing it', () => {
    expect(issuesOf(`# ${'x'.repeat(1024 * 1024)}\n${role()}`)[0]!.message).toBe(
      'the file is over 1 MiB; a policy is a few KiB',
    );
  });
});
