import { describe, expect, it } from 'vitest';
import { brief, issuesOf, parse, role } from './helpers.js';

/** The `notify` section's routing keys: what parses, and one error per bad key, with its line. */

const HOOK = 'https://hooks.example.com/services/T0/B0/s3cr3t-path';
const policy = (entries: string) => `${role()}notify:\n${entries}`;

describe('notify routing: valid entries', () => {
  it('reads webhooks, formats, secret names, role and event filters, and email recipients', () => {
    const p = parse(
      policy(
        `  - webhook: ${HOOK}\n` +
          '    format: slack\n' +
          '    roles: [deploy]\n' +
          '    events: [request.created, request.approved]\n' +
          '  - webhook: https://chatops.example.com/jit\n' +
          '    secret: chatops\n' +
          '  - email: approvers\n' +
          '  - email: [requester, Oncall@Example.com]\n' +
          '    events: [request.approved, request.denied, request.expiring]\n',
      ),
    );
    expect(p.notify).toEqual([
      {
        kind: 'webhook',
        webhook: HOOK,
        format: 'slack',
        secret: null,
        roles: ['deploy'],
        events: ['request.created', 'request.approved'],
      },
      {
        kind: 'webhook',
        webhook: 'https://chatops.example.com/jit',
        format: 'standard',
        secret: 'chatops',
        roles: null,
        events: null,
      },
      { kind: 'email', to: [{ kind: 'approvers' }], roles: null, events: null },
      {
        kind: 'email',
        to: [{ kind: 'requester' }, { kind: 'address', address: 'Oncall@Example.com' }],
        roles: null,
        events: ['request.approved', 'request.denied', 'request.expiring'],
      },
    ]);
  });

  it('keeps the old form: - webhook: URL is a signed standard webhook for everything', () => {
    expect(parse(policy(`  - webhook: ${HOOK}\n`)).notify).toEqual([
      {
        kind: 'webhook',
        webhook: HOOK,
        format: 'standard',
        secret: null,
        roles: null,
        events: null,
      },
    ]);
  });
});

describe('notify routing: every bad key is an error at its line, never quoting a webhook URL', () => {
  it.each([
    ['format: slak', '9:13 notify[0].format: unknown format `slak`; did you mean `slack`?'],
    [
      'format: json',
      "9:13 notify[0].format: must be standard (jitctl's signed JSON event) or slack (an incoming-webhook message), not text (`json`)",
    ],
    [
      'format: [slack]',
      "9:13 notify[0].format: must be standard (jitctl's signed JSON event) or slack (an incoming-webhook message), not a list",
    ],
    [
      'secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      '9:13 notify[0].secret: looks like a secret itself: a policy names the secret (e.g. `secret: chatops`) and the broker holds it (webhook_secrets in its settings); rotate this one, it has been written down',
    ],
    [
      'secret: "chat ops"',
      "9:13 notify[0].secret: must be a name such as chatops (letters, digits, `.`, `_`, `-`) defined in the broker's webhook_secrets",
    ],
    [
      'secret: 42',
      "9:13 notify[0].secret: must name a secret of the broker's webhook_secrets, not a number (42)",
    ],
    ['roles: [deplyo]', '9:13 notify[0].roles[0]: unknown role `deplyo`; did you mean `deploy`?'],
    ['roles: [payments]', '9:13 notify[0].roles[0]: there is no role `payments` in this policy'],
    [
      'roles: deploy',
      '9:12 notify[0].roles: must be a list such as [prod-deploy], not text (`deploy`)',
    ],
    [
      'roles: []',
      '9:12 notify[0].roles: is empty, so the entry would never apply: list roles or remove the key',
    ],
    ['roles: [deploy, deploy]', '9:21 notify[0].roles[1]: `deploy` is listed twice'],
    [
      'events: [request.create]',
      '9:14 notify[0].events[0]: unknown event `request.create`; did you mean `request.created`?',
    ],
    [
      'events: [credential.minted]',
      '9:14 notify[0].events[0]: unknown event `credential.minted` (events: request.created, review.recorded, request.approved, request.denied, request.cancelled, request.expired, request.revoked, request.activated, extension.requested, extension.approved, extension.denied, extension.cancelled, extension.expired, break_glass.used, break_glass.acknowledged, break_glass.flagged, break_glass.overdue, access_review.started, access_review.decided, access_review.closed, access_review.reminder, access_review.overdue, request.expiring)',
    ],
    ['events: [1]', '9:14 notify[0].events[0]: must be an event name, not a number (1)'],
    [
      'evnts: [request.created]',
      '9:5 notify[0].evnts: unknown key `evnts`; did you mean `events`?',
    ],
    [
      'channel: "#ops"',
      '9:5 notify[0].channel: unknown key `channel` (allowed here: webhook, email, format, secret, roles, events)',
    ],
  ])('webhook entry with %s', (line, expected) => {
    const issues = issuesOf(policy(`  - webhook: ${HOOK}\n    ${line}\n`));
    expect(brief(issues)).toEqual([expected]);
    expect(JSON.stringify(issues)).not.toContain('s3cr3t-path');
  });

  it.each([
    [
      'email: aprovers',
      '8:12 notify[0].email: unknown recipient `aprovers`; did you mean `approvers`?',
    ],
    [
      'email: everyone',
      '8:12 notify[0].email: unknown recipient `everyone` (approvers, requester, or an email address)',
    ],
    [
      'email: "Ops <ops@example.com>"',
      '8:12 notify[0].email: `Ops <ops@example.com>` is not an email address (one plain address such as oncall@example.com, no name or brackets)',
    ],
    [
      'email: "a@example.com\\nBcc: x@evil.example"',
      '8:12 notify[0].email: `a@example.com\nBcc: x@evil.example` is not an email address (one plain address such as oncall@example.com, no name or brackets)',
    ],
    ['email: []', '8:12 notify[0].email: names nobody: write approvers, requester or addresses'],
    [
      'email: [approvers, a@example.com, A@example.com]',
      '8:39 notify[0].email[2]: `A@example.com` is already listed at [1]',
    ],
    [
      'email: [approvers, { to: x }]',
      '8:24 notify[0].email[1]: must be approvers, requester, an email address or a list of them, not a mapping',
    ],
    [
      'email: approvers\n    format: slack',
      '9:5 notify[0].format: `format` is for webhooks, not email',
    ],
    [
      'email: approvers\n    secret: chatops',
      '9:5 notify[0].secret: `secret` is for webhooks, not email',
    ],
  ])('email entry %s', (entry, expected) => {
    expect(brief(issuesOf(policy(`  - ${entry}\n`)))).toEqual([expected]);
  });

  it('refuses an entry with both webhook and email, or neither', () => {
    expect(brief(issuesOf(policy(`  - webhook: ${HOOK}\n    email: approvers\n`)))).toEqual([
      '8:5 notify[0]: an entry is either a `webhook` or an `email`, not both: write two entries',
    ]);
    expect(brief(issuesOf(policy('  - roles: [deploy]\n')))).toEqual([
      '8:5 notify[0]: missing `webhook` (a URL to POST events to) or `email` (approvers, requester or addresses)',
    ]);
  });

  it('reports every problem of an entry at once', () => {
    const issues = issuesOf(
      policy(`  - webhook: ${HOOK}\n    format: xml\n    roles: [nope]\n    events: [nope]\n`),
    );
    expect(issues.map((i) => i.path)).toEqual([
      'notify[0].format',
      'notify[0].roles[0]',
      'notify[0].events[0]',
    ]);
    expect(JSON.stringify(issues)).not.toContain('s3cr3t-path');
  });

  it('a roles filter may name a role that has errors of its own, without a second error', () => {
    const text = `${role({ approvals: '-1' })}notify:\n  - email: approvers\n    roles: [deploy]\n`;
    expect(issuesOf(text).map((i) => i.path)).toEqual(['roles.deploy.approvals']);
  });
});
