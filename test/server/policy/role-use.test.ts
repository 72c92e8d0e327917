import { describe, expect, it } from 'vitest';
import { brief, issuesOf, parse, role } from './helpers.js';

/**
 * The role keys of revocation (issue 13) and of reporting commands (issue 16): the credential's
 * lifetime (`credential.ttl`) and how a grant is used on a person's machine (`on_revoke`,
 * `kill_at_expiry`, `audit_commands`, `audit_commands_required`).
 */

const MIN = 60_000;

describe('credential.ttl', () => {
  it('defaults to 15m and takes any duration of 30s or more', () => {
    expect(parse(role()).roles.get('deploy')!.credential.ttlMs).toBe(15 * MIN);
    const r = parse(role({ credential: '{ audience: https://k8s.example.com, ttl: 5m }' }));
    expect(r.roles.get('deploy')!.credential.ttlMs).toBe(5 * MIN);
    // Longer than the grant is allowed: the grant's end caps every credential.
    const long = parse(role({ credential: '{ audience: https://k8s.example.com, ttl: 8h }' }));
    expect(long.roles.get('deploy')!.credential.ttlMs).toBe(480 * MIN);
  });

  it.each([
    ['10s', 'is shorter than 30s: every tool call would mint a credential (5m is a good lifetime)'],
    ['5', '`5` has no unit: write a duration such as 15m, 1h30m or 90s'],
    ['soon', '"soon" is not a duration'],
  ])('refuses ttl: %s', (ttl, message) => {
    const [issue] = issuesOf(
      role({ credential: `{ audience: https://k8s.example.com, ttl: ${ttl} }` }),
    );
    expect(issue!.path).toBe('roles.deploy.credential.ttl');
    expect(issue!.message).toContain(message.replace(/^"soon" /, ''));
  });
});

describe('using a grant', () => {
  it('defaults: a revocation ends the command, the program name is reported, nothing is required', () => {
    expect(parse(role()).roles.get('deploy')!.use).toEqual({
      onRevoke: 'end',
      killAtExpiry: false,
      auditCommands: 'name',
      auditCommandsRequired: false,
    });
  });

  it('reads each key', () => {
    const r = parse(
      role({
        on_revoke: 'warn',
        kill_at_expiry: 'true',
        audit_commands: 'full',
        audit_commands_required: 'true',
      }),
    );
    expect(r.roles.get('deploy')!.use).toEqual({
      onRevoke: 'warn',
      killAtExpiry: true,
      auditCommands: 'full',
      auditCommandsRequired: true,
    });
  });

  it('names each mistake with its line', () => {
    expect(
      brief(
        issuesOf(
          role({
            on_revoke: 'kill',
            kill_at_expiry: 'yes',
            audit_commands: '[name]',
            audit_commands_requird: 'true',
          }),
        ),
      ),
    ).toEqual([
      '7:16 roles.deploy.on_revoke: must be one of end, warn, not text (`kill`)',
      '8:21 roles.deploy.kill_at_expiry: must be true or false, not text (`yes`) (YAML 1.2 reads yes/no/on/off as text)',
      '9:21 roles.deploy.audit_commands: must be one of none, name, full, not a list',
      '10:5 roles.deploy.audit_commands_requird: unknown key `audit_commands_requird`; did you mean `audit_commands_required`?',
    ]);
  });
});
