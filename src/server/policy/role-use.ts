import type { UseSettings } from '../../api/schemas.js';
import { type Checker, checkBoolean, describe } from './checks.js';
import type { UsePolicy } from './types.js';
import { childPath, type YamlEntry } from './yaml-tree.js';

/**
 * A role's keys about using a grant on a person's machine (docs/policy.md "Using a grant"): what
 * a running `jitctl exec`/`shell` does when the grant is revoked (`on_revoke`) or ends
 * (`kill_at_expiry`), and how the commands run under it are reported (`audit_commands`,
 * `audit_commands_required`). The CLI learns them with each credential it is handed.
 */

export const USE_KEYS = [
  'on_revoke',
  'kill_at_expiry',
  'audit_commands',
  'audit_commands_required',
] as const;

export const ON_REVOKE = ['end', 'warn'] as const;
export const AUDIT_COMMANDS = ['none', 'name', 'full'] as const;

/**
 * The defaults: a revocation ends the command (the point of revoking); the program's name is
 * reported but not its arguments, which can hold secrets; a broker that cannot be reached does
 * not stop a command from running.
 */
export const DEFAULT_USE: UsePolicy = Object.freeze({
  onRevoke: 'end',
  killAtExpiry: false,
  auditCommands: 'name',
  auditCommandsRequired: false,
});

function checkChoice<T extends string>(
  c: Checker,
  entry: YamlEntry | undefined,
  rolePath: string,
  choices: readonly T[],
  fallback: T,
): T | undefined {
  if (!entry) return fallback;
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && typeof v.value === 'string' && choices.includes(v.value as T))
    return v.value as T;
  c.add(
    childPath(rolePath, entry.key),
    v.loc,
    `must be one of ${choices.join(', ')}, not ${describe(v)}`,
  );
  return undefined;
}

/** Reads the use keys of one role; undefined when one of them is wrong (the issue is recorded). */
export function checkUse(
  c: Checker,
  field: (key: string) => YamlEntry | undefined,
  rolePath: string,
): UsePolicy | undefined {
  const onRevoke = checkChoice(c, field('on_revoke'), rolePath, ON_REVOKE, DEFAULT_USE.onRevoke);
  const killAtExpiry = checkBoolean(c, field('kill_at_expiry'), rolePath, DEFAULT_USE.killAtExpiry);
  const auditCommands = checkChoice(
    c,
    field('audit_commands'),
    rolePath,
    AUDIT_COMMANDS,
    DEFAULT_USE.auditCommands,
  );
  const auditCommandsRequired = checkBoolean(
    c,
    field('audit_commands_required'),
    rolePath,
    DEFAULT_USE.auditCommandsRequired,
  );
  if (
    onRevoke === undefined ||
    killAtExpiry === undefined ||
    auditCommands === undefined ||
    auditCommandsRequired === undefined
  )
    return undefined;
  return { onRevoke, killAtExpiry, auditCommands, auditCommandsRequired };
}

/** The wire form (`use` of a credential, a grant's status and GET /v1/roles). */
export function useSettings(use: UsePolicy): UseSettings {
  return {
    on_revoke: use.onRevoke,
    kill_at_expiry: use.killAtExpiry,
    audit_commands: use.auditCommands,
    audit_commands_required: use.auditCommandsRequired,
  };
}
