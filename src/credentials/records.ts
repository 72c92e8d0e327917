import type { CredentialResponse, UseSettings } from '../api/schemas.js';
import { Secret } from '../api/secret.js';

/**
 * What jitctl keeps in a credential store, and under which keys. Keys are namespaced per broker
 * and kind (`<server>|session`, `<server>|credential|<role>`); values are versioned JSON. Anything
 * that does not decode (corrupt, foreign, old version) is treated as absent and never sent
 * anywhere.
 */

const SEP = '|';

export function serverPrefix(server: string): string {
  return `${server}${SEP}`;
}
export function sessionKey(server: string): string {
  return `${server}${SEP}session`;
}
export function credentialKey(server: string, role: string): string {
  return `${server}${SEP}credential${SEP}${role}`;
}
/** The broker a session or credential key belongs to, or undefined for any other key. */
export function serverOfKey(key: string): string | undefined {
  const session = `${SEP}session`;
  if (key.endsWith(session)) return key.slice(0, -session.length) || undefined;
  const at = key.indexOf(`${SEP}credential${SEP}`);
  return at > 0 ? key.slice(0, at) : undefined;
}
/** The role of a credential key of this server, or undefined for other keys. */
export function roleOfKey(server: string, key: string): string | undefined {
  const prefix = `${server}${SEP}credential${SEP}`;
  return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
}

export interface StoredIdentity {
  iss: string;
  sub: string;
  name: string | null;
  email: string | null;
  groups: string[];
}

/** A login session with one broker. */
export interface SessionRecord {
  /** oidc: signed in at the identity provider; federated: a broker session from a CI token (RFC 8693). */
  kind: 'oidc' | 'federated';
  /** The identity provider (oidc) or the broker (federated). */
  issuer: string;
  clientId: string;
  /** The bearer token sent to the broker (an ID token, or the broker's session token). */
  bearer: Secret;
  refreshToken: Secret | null;
  /** When `bearer` expires (ms since epoch). */
  expiresAt: number;
  identity: StoredIdentity;
  acr: string | null;
  /** Last active authentication (ms since epoch), from `auth_time`. */
  authTime: number | null;
}

/** An elevated credential for one role. */
export interface CredentialRecord {
  role: string;
  requestId: string;
  token: Secret;
  /** RFC 3339: when this credential (the token) expires. */
  expiresAt: string;
  /** The role's env templates, rendered; the values usually hold the token. */
  env: Record<string, Secret>;
  /**
   * RFC 3339: when the grant ends. Credentials last the role's `credential.ttl`; while the grant
   * lasts, jitctl mints a fresh one. Absent in records of older versions: the token's expiry.
   */
  grantExpiresAt?: string | undefined;
  /** The token's `jti`, as the broker said at minting (reports of commands name it). */
  jti?: string | undefined;
  /** When it was minted (ms since the epoch). */
  mintedAt?: number | undefined;
  /**
   * When the broker last said the grant was active (ms since the epoch): how long a credential
   * may be handed over while the broker cannot be reached (src/cli/hand-over.ts).
   */
  confirmedAt?: number | undefined;
  /** How the role wants the grant used (on_revoke, kill_at_expiry, audit_commands, …). */
  use?: UseSettings | undefined;
}

/** What the CLI keeps of a credential the broker just minted (`POST …/credential`) at `now`. */
export function credentialRecordOf(
  role: string,
  requestId: string,
  minted: CredentialResponse,
  now: number,
): CredentialRecord {
  const env: Record<string, Secret> = {};
  for (const [name, value] of Object.entries(minted.env)) env[name] = new Secret(value);
  return {
    role,
    requestId,
    token: new Secret(minted.token),
    expiresAt: minted.expires_at,
    env,
    grantExpiresAt: minted.grant_expires_at,
    jti: minted.jti,
    mintedAt: now,
    confirmedAt: now,
    use: minted.use,
  };
}

/** The grant's end (ms since the epoch), for records with or without it. */
export function grantEndOf(c: CredentialRecord): number {
  return Date.parse(c.grantExpiresAt ?? c.expiresAt);
}

/** A role's use settings when the broker did not say (older brokers): the documented defaults. */
export const DEFAULT_USE_SETTINGS: UseSettings = Object.freeze({
  on_revoke: 'end',
  kill_at_expiry: false,
  audit_commands: 'name',
  audit_commands_required: false,
});

export function useOf(c: CredentialRecord): UseSettings {
  return c.use ?? DEFAULT_USE_SETTINGS;
}

function decodeUse(v: unknown): UseSettings | undefined {
  if (!isObject(v)) return undefined;
  const onRevoke = v.on_revoke === 'warn' ? 'warn' : v.on_revoke === 'end' ? 'end' : undefined;
  const audit =
    v.audit_commands === 'none' || v.audit_commands === 'name' || v.audit_commands === 'full'
      ? v.audit_commands
      : undefined;
  if (
    !onRevoke ||
    !audit ||
    typeof v.kill_at_expiry !== 'boolean' ||
    typeof v.audit_commands_required !== 'boolean'
  )
    return undefined;
  return {
    on_revoke: onRevoke,
    kill_at_expiry: v.kill_at_expiry,
    audit_commands: audit,
    audit_commands_required: v.audit_commands_required,
  };
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function encodeSession(s: SessionRecord): string {
  return JSON.stringify({
    v: 1,
    kind: s.kind,
    issuer: s.issuer,
    client_id: s.clientId,
    bearer: s.bearer.reveal(),
    refresh_token: s.refreshToken?.reveal() ?? null,
    expires_at: s.expiresAt,
    identity: s.identity,
    acr: s.acr,
    auth_time: s.authTime,
  });
}

export function decodeSession(text: string | undefined): SessionRecord | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (!isObject(v) || v.v !== 1) return undefined;
    if (v.kind !== 'oidc' && v.kind !== 'federated') return undefined;
    if (
      !isString(v.issuer) ||
      !isString(v.client_id) ||
      !isString(v.bearer) ||
      typeof v.expires_at !== 'number'
    )
      return undefined;
    const id = v.identity;
    if (!isObject(id) || !isString(id.iss) || !isString(id.sub) || !Array.isArray(id.groups))
      return undefined;
    return {
      kind: v.kind,
      issuer: v.issuer,
      clientId: v.client_id,
      bearer: new Secret(v.bearer),
      refreshToken: isString(v.refresh_token) ? new Secret(v.refresh_token) : null,
      expiresAt: v.expires_at,
      identity: {
        iss: id.iss,
        sub: id.sub,
        name: isString(id.name) ? id.name : null,
        email: isString(id.email) ? id.email : null,
        groups: id.groups.filter(isString),
      },
      acr: isString(v.acr) ? v.acr : null,
      authTime: typeof v.auth_time === 'number' ? v.auth_time : null,
    };
  } catch {
    return undefined;
  }
}

export function encodeCredential(c: CredentialRecord): string {
  return JSON.stringify({
    v: 1,
    role: c.role,
    request_id: c.requestId,
    token: c.token.reveal(),
    expires_at: c.expiresAt,
    env: Object.fromEntries(Object.entries(c.env).map(([k, s]) => [k, s.reveal()])),
    ...(c.grantExpiresAt !== undefined ? { grant_expires_at: c.grantExpiresAt } : {}),
    ...(c.jti !== undefined ? { jti: c.jti } : {}),
    ...(c.mintedAt !== undefined ? { minted_at: c.mintedAt } : {}),
    ...(c.confirmedAt !== undefined ? { confirmed_at: c.confirmedAt } : {}),
    ...(c.use !== undefined ? { use: c.use } : {}),
  });
}

export function decodeCredential(text: string | undefined): CredentialRecord | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (!isObject(v) || v.v !== 1) return undefined;
    if (
      !isString(v.role) ||
      !isString(v.request_id) ||
      !isString(v.token) ||
      !isString(v.expires_at)
    )
      return undefined;
    if (Number.isNaN(Date.parse(v.expires_at)) || !isObject(v.env)) return undefined;
    const env: Record<string, Secret> = {};
    for (const [k, val] of Object.entries(v.env)) {
      if (!isString(val)) return undefined;
      env[k] = new Secret(val);
    }
    const grant =
      isString(v.grant_expires_at) && !Number.isNaN(Date.parse(v.grant_expires_at))
        ? v.grant_expires_at
        : undefined;
    const number = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
    return {
      role: v.role,
      requestId: v.request_id,
      token: new Secret(v.token),
      expiresAt: v.expires_at,
      env,
      grantExpiresAt: grant,
      jti: isString(v.jti) ? v.jti : undefined,
      mintedAt: number(v.minted_at),
      confirmedAt: number(v.confirmed_at),
      use: decodeUse(v.use),
    };
  } catch {
    return undefined;
  }
}

// ---- scheduled grants (`jitctl request --at`): no secret, so `status` can show them offline ----

export function scheduledKey(server: string, role: string): string {
  return `${server}${SEP}scheduled${SEP}${role}`;
}
/** The role of a scheduled-grant key of this server, or undefined for other keys. */
export function roleOfScheduledKey(server: string, key: string): string | undefined {
  const prefix = `${server}${SEP}scheduled${SEP}`;
  return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
}

export interface ScheduledRecord {
  role: string;
  requestId: string;
  /** RFC 3339 */
  startsAt: string;
  expiresAt: string;
}

export function encodeScheduled(s: ScheduledRecord): string {
  return JSON.stringify({
    v: 1,
    role: s.role,
    request_id: s.requestId,
    starts_at: s.startsAt,
    expires_at: s.expiresAt,
  });
}

export function decodeScheduled(text: string | undefined): ScheduledRecord | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (!isObject(v) || v.v !== 1) return undefined;
    if (!isString(v.role) || !isString(v.request_id)) return undefined;
    if (!isString(v.starts_at) || !isString(v.expires_at)) return undefined;
    if (Number.isNaN(Date.parse(v.starts_at)) || Number.isNaN(Date.parse(v.expires_at))) {
      return undefined;
    }
    return {
      role: v.role,
      requestId: v.request_id,
      startsAt: v.starts_at,
      expiresAt: v.expires_at,
    };
  } catch {
    return undefined;
  }
}
