import { resolveServer, resolveStoreKind } from '../cli/config.js';
import type { Context } from '../cli/context.js';
import { DeniedError, UsageError } from '../cli/errors.js';
import { clockTime, relative, safe } from '../cli/output.js';
import {
  type CredentialRecord,
  credentialKey,
  decodeCredential,
  grantEndOf,
  roleOfKey,
  serverPrefix,
} from './records.js';
import type { CredentialStore } from './store.js';

/**
 * Finding the elevated credential a command should use (exec, shell, credential). Reads the
 * store only: no network, no broker client; the command then confirms the grant with the broker
 * before handing the credential over (src/cli/hand-over.ts).
 * `exec --request` (issue #4's flow) wraps {@link activeCredential}: on {@link NoCredentialError}
 * it files a request, waits, stores the new record and carries on.
 */

/** The store and broker a credential belongs to. */
export interface CredentialSource {
  server: string;
  store: CredentialStore;
}

/**
 * No usable credential (none stored, or expired): exit 3 with the command that gets one. The
 * hint here names the role only; the CLI's entry adds the role's own duration and whether it
 * needs a reason (src/cli/hints.ts), which this store-only code does not know.
 */
export class NoCredentialError extends DeniedError {
  override name = 'NoCredentialError';
  constructor(
    message: string,
    readonly role: string | undefined,
    readonly expired: boolean,
    /** The broker the credential was looked for at. */
    readonly server?: string,
  ) {
    super(message, {
      hint: role
        ? `request one: jitctl request ${safe(role)} (\`jitctl roles\` shows how long it can be and whether it needs a reason)`
        : 'request one: jitctl request <role> (`jitctl roles` lists the roles you may request)',
    });
  }
}

/** The broker (--server, JITCTL_SERVER, config) and the store (--store, JITCTL_STORE, config). */
export async function openCredentialSource(
  ctx: Context,
  opts: { server?: string | undefined; store?: string | undefined },
): Promise<CredentialSource> {
  const server = await resolveServer(ctx, opts.server);
  const kind = await resolveStoreKind(ctx, opts.store);
  const { openStore } = await import('./index.js');
  return { server, store: await openStore(ctx, kind) };
}

/**
 * The unexpired credential for `role`, or with no role the only unexpired one. Throws
 * {@link NoCredentialError} (exit 3) when there is none or it has expired, and a usage error
 * listing the candidates when several are active. An expired credential is never returned.
 * A record filed under another role's key is foreign and ignored.
 */
export async function activeCredential(
  ctx: Context,
  source: CredentialSource,
  role: string | undefined,
  /** How to name a role for the command at hand, for the hint when several are active. */
  usage: (role: string) => string = (r) => `jitctl exec ${r} -- …`,
): Promise<CredentialRecord> {
  const now = ctx.clock.now();
  if (role !== undefined) {
    if (role === '')
      throw new UsageError('the role is empty', { hint: 'name a role, e.g. prod-deploy' });
    const record = decodeCredential(await source.store.get(credentialKey(source.server, role)));
    if (!record || record.role !== role) {
      throw new NoCredentialError(
        `no active credential for ${safe(role)}`,
        role,
        false,
        source.server,
      );
    }
    // The grant's end: a credential past its own expiry is replaced while the grant lasts.
    const end = grantEndOf(record);
    if (end <= now) {
      throw new NoCredentialError(
        `the credential for ${safe(role)} expired at ${clockTime(end)} (${relative(end, now)})`,
        role,
        true,
        source.server,
      );
    }
    return record;
  }

  const active: CredentialRecord[] = [];
  let expired = 0;
  for (const record of await storedCredentials(source)) {
    if (grantEndOf(record) <= now) expired++;
    else active.push(record);
  }
  if (active.length === 1) return active[0]!;
  if (active.length === 0) {
    const why = expired > 0 ? ` (${expired} expired)` : '';
    throw new NoCredentialError(
      `no active credential on ${safe(source.server)}${why}`,
      undefined,
      expired > 0,
      source.server,
    );
  }
  active.sort((a, b) => a.role.localeCompare(b.role));
  const list = active
    .map((r) => `${safe(r.role)} (expires ${relative(grantEndOf(r), now)})`)
    .join(', ');
  throw new UsageError(`several credentials are active: ${list}`, {
    hint: `name the role, e.g. ${usage(safe(active[0]!.role))}`,
  });
}

/**
 * Every credential of `source.server` in its store, expired or not (`jitctl status` shows them
 * all). Entries that do not decode, and records filed under another role's key, are skipped.
 */
export async function storedCredentials(source: CredentialSource): Promise<CredentialRecord[]> {
  const records: CredentialRecord[] = [];
  for (const key of await source.store.list(serverPrefix(source.server))) {
    const keyRole = roleOfKey(source.server, key);
    if (keyRole === undefined) continue;
    const record = decodeCredential(await source.store.get(key));
    if (record && record.role === keyRole) records.push(record);
  }
  return records;
}

/** RFC 3339 in UTC without fractional seconds, the form scripts and kubectl expect. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Never taken from a role's env: jitctl's own namespace (exec sets those itself) and the dynamic
 * loader's variables, which would let whoever writes the broker's policy run code in every
 * command that uses the credential.
 */
const RESERVED = /^(JITCTL_|LD_|DYLD_)/;

export interface CredentialEnv {
  /** The role's variables with the credential, plus jitctl's own. */
  vars: Record<string, string>;
  /** Names from the role's env that were not used (invalid or reserved). */
  skipped: string[];
}

/** The variables a credential adds to a command's environment (exec, shell, `credential --env`). */
export function credentialVariables(
  record: CredentialRecord,
  server: string,
  opts: { session: boolean },
): CredentialEnv {
  const vars: Record<string, string> = {};
  const skipped: string[] = [];
  for (const [name, value] of Object.entries(record.env)) {
    if (!ENV_NAME.test(name) || RESERVED.test(name)) skipped.push(name);
    else vars[name] = value.reveal();
  }
  vars.JITCTL_ROLE = record.role;
  vars.JITCTL_REQUEST_ID = record.requestId;
  // The token's own expiry (the role's credential.ttl), and the grant's, which may be later.
  vars.JITCTL_EXPIRES_AT = rfc3339(Date.parse(record.expiresAt));
  vars.JITCTL_GRANT_EXPIRES_AT = rfc3339(grantEndOf(record));
  vars.JITCTL_SERVER = server;
  if (opts.session) vars.JITCTL_SESSION = record.requestId;
  return { vars, skipped };
}

/**
 * A command's environment: the parent's, without jitctl's own settings and secrets (every
 * `JITCTL_*`: JITCTL_FILE_PASSPHRASE, JITCTL_FEDERATED_TOKEN, JITCTL_STORE, …), plus the
 * credential's variables. Nothing else changes.
 */
export function commandEnvironment(
  parent: Readonly<Record<string, string | undefined>>,
  record: CredentialRecord,
  server: string,
): CredentialEnv {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && !name.startsWith('JITCTL_')) env[name] = value;
  }
  const { vars, skipped } = credentialVariables(record, server, { session: true });
  return { vars: Object.assign(env, vars), skipped };
}
