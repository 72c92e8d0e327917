import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { DurationError, parseDuration } from '../../api/duration.js';
import { isLoopbackHost } from '../../api/loopback.js';
import { Secret } from '../../api/secret.js';
import { EMAIL_ADDRESS, SECRET_NAME } from '../policy/notify-section.js';
import type { WebhookFormat } from '../policy/types.js';

/**
 * The broker's notification settings (docs/operations.md "Notifications"): signing secrets, the
 * SMTP relay, the security contacts, the expiry reminder and how long to keep retrying. Secrets
 * are given as references (`env:VAR`, `file:PATH`) so the config file itself can be shared; the
 * SMTP password can only be a reference. Values are resolved at start, never logged.
 */

export class NotifySettingError extends Error {
  override name = 'NotifySettingError';
  constructor(
    readonly where: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Where a secret comes from; resolved by {@link resolveSecret} at start. */
export type SecretRef =
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string }
  | { kind: 'value'; value: Secret };

export type TlsMode = 'starttls' | 'tls' | 'none';

export interface SmtpSettings {
  host: string;
  port: number;
  tls: TlsMode;
  /** `jit@example.com` or `jitctl <jit@example.com>`. */
  from: string;
  user: string | null;
  password: SecretRef | null;
}

export type SecurityContact =
  | { kind: 'email'; address: string }
  | { kind: 'webhook'; webhook: string; format: WebhookFormat; secret: string | null };

export interface NotificationSettings {
  /** Name → signing secret (`default` signs webhooks that name none). */
  webhookSecrets: Record<string, SecretRef>;
  smtp: SmtpSettings | null;
  /** Told of high-priority events (break-glass) whatever the policy routes. */
  securityContacts: SecurityContact[];
  /** How long before a grant ends its holder is reminded; null: never. */
  reminderBeforeMs: number | null;
  /** How long a notification is retried before it is given up (and logged and counted). */
  giveUpAfterMs: number;
}

export const DEFAULT_REMINDER_BEFORE_MS = 5 * 60_000;
export const DEFAULT_GIVE_UP_AFTER_MS = 60 * 60_000;

export const defaultNotificationSettings = (): NotificationSettings => ({
  webhookSecrets: {},
  smtp: null,
  securityContacts: [],
  reminderBeforeMs: DEFAULT_REMINDER_BEFORE_MS,
  giveUpAfterMs: DEFAULT_GIVE_UP_AFTER_MS,
});

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Mappings and lists arrive as YAML from the file and as JSON text from a variable. */
function structured(v: unknown, where: string, what: string): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    throw new NotifySettingError(where, `must be ${what} (JSON in a variable)`);
  }
}

const SECRET_REF_HINT =
  'write env:VARIABLE (read from the environment at start) or file:/path/to/secret';

/** `env:VAR`, `file:PATH` or, when `literal` allows it, the value itself. */
export function parseSecretRef(
  v: unknown,
  where: string,
  baseDir: string,
  literal: 'webhook' | 'never',
): SecretRef {
  if (typeof v !== 'string' || v.trim() === '')
    throw new NotifySettingError(where, 'must be a secret reference', SECRET_REF_HINT);
  const text = v.trim();
  if (text.startsWith('env:')) {
    const name = text.slice(4);
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name))
      throw new NotifySettingError(where, `env:${name} is not an environment variable name`);
    return { kind: 'env', name };
  }
  if (text.startsWith('file:')) {
    const p = text.slice(5);
    if (p === '') throw new NotifySettingError(where, 'file: needs a path');
    return { kind: 'file', path: isAbsolute(p) ? p : resolve(baseDir, p) };
  }
  if (literal === 'webhook' && text.startsWith('whsec_')) {
    checkWebhookSecret(text, where);
    return { kind: 'value', value: new Secret(text) };
  }
  // Never echo the value: it may be the secret itself.
  throw new NotifySettingError(
    where,
    literal === 'never'
      ? 'must not hold the password itself'
      : 'must be a whsec_… secret or a reference to one',
    SECRET_REF_HINT,
  );
}

/** Standard Webhooks secrets: `whsec_` and base64 of 24 to 64 random bytes. */
export function checkWebhookSecret(text: string, where: string): void {
  const body = text.startsWith('whsec_') ? text.slice(6) : '';
  let ok = /^[A-Za-z0-9+/]+={0,2}$/.test(body);
  if (ok) {
    const bytes = Buffer.from(body, 'base64');
    ok = bytes.length >= 24 && bytes.length <= 64;
    try {
      new Webhook(text);
    } catch {
      ok = false;
    }
  }
  if (!ok)
    throw new NotifySettingError(
      where,
      'is not a Standard Webhooks secret (whsec_ followed by base64 of 24 to 64 bytes)',
      'make one with: echo "whsec_$(openssl rand -base64 32)"',
    );
}

/** Reads a secret at start; a missing variable or file is a start-up error naming the setting. */
export function resolveSecret(
  ref: SecretRef,
  where: string,
  env: Readonly<Record<string, string | undefined>>,
  kind: 'webhook' | 'password',
): Secret {
  let value: string;
  if (ref.kind === 'value') return ref.value;
  if (ref.kind === 'env') {
    const v = env[ref.name];
    if (v === undefined || v.trim() === '')
      throw new NotifySettingError(where, `the environment variable ${ref.name} is not set`);
    value = v.trim();
  } else {
    try {
      value = readFileSync(ref.path, 'utf8').trim();
    } catch (err) {
      throw new NotifySettingError(
        where,
        `cannot read ${ref.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    if (value === '') throw new NotifySettingError(where, `${ref.path} is empty`);
  }
  if (kind === 'webhook') checkWebhookSecret(value, where);
  return new Secret(value);
}

export function parseWebhookSecrets(
  v: unknown,
  where: string,
  baseDir: string,
): Record<string, SecretRef> {
  const value = structured(v, where, 'a mapping of names to secrets');
  if (!isObject(value))
    throw new NotifySettingError(
      where,
      'must be a mapping of names to secrets, e.g. { default: env:JITCTL_WEBHOOK_SECRET }',
    );
  const out: Record<string, SecretRef> = {};
  for (const [name, ref] of Object.entries(value)) {
    if (!SECRET_NAME.test(name))
      throw new NotifySettingError(
        `${where}.${name.slice(0, 40)}`,
        'is not a secret name (letters, digits, `.`, `_`, `-`)',
      );
    out[name] = parseSecretRef(ref, `${where}.${name}`, baseDir, 'webhook');
  }
  return out;
}

const SMTP_KEYS = ['host', 'port', 'tls', 'from', 'user', 'password'];
const TLS_MODES: readonly TlsMode[] = ['starttls', 'tls', 'none'];
const DEFAULT_PORT: Record<TlsMode, number> = { starttls: 587, tls: 465, none: 25 };

export function parseSmtp(v: unknown, where: string, baseDir: string): SmtpSettings | null {
  if (v === null || v === false || v === 'none' || v === 'off') return null;
  const value = structured(v, where, 'a mapping with host and from');
  if (!isObject(value))
    throw new NotifySettingError(where, 'must be a mapping such as { host, from, user, password }');
  for (const k of Object.keys(value))
    if (!SMTP_KEYS.includes(k))
      throw new NotifySettingError(
        `${where}.${k.slice(0, 40)}`,
        `unknown key (${SMTP_KEYS.join(', ')})`,
      );
  const host = value.host;
  if (typeof host !== 'string' || !/^[A-Za-z0-9.:[\]_-]{1,253}$/.test(host.trim()))
    throw new NotifySettingError(`${where}.host`, 'must be the SMTP relay host name or address');
  const tls = value.tls ?? 'starttls';
  if (typeof tls !== 'string' || !TLS_MODES.includes(tls as TlsMode))
    throw new NotifySettingError(
      `${where}.tls`,
      'must be starttls (port 587, the default), tls (implicit TLS, port 465) or none',
    );
  const bare = host.trim().replace(/^\[(.*)\]$/, '$1');
  if (tls === 'none' && !isLoopbackHost(bare))
    throw new NotifySettingError(
      `${where}.tls`,
      'none sends mail and the password in clear: only for a relay on this machine (127.0.0.1, ::1, localhost)',
      'use starttls or tls',
    );
  const port = value.port ?? DEFAULT_PORT[tls as TlsMode];
  const portNumber = typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : port;
  if (
    typeof portNumber !== 'number' ||
    !Number.isInteger(portNumber) ||
    portNumber < 1 ||
    portNumber > 65535
  )
    throw new NotifySettingError(`${where}.port`, 'must be a port number (1–65535)');
  const from = value.from;
  if (typeof from !== 'string' || !isFromAddress(from.trim()))
    throw new NotifySettingError(
      `${where}.from`,
      'must be an address such as jit@example.com or "jitctl <jit@example.com>"',
    );
  const user = value.user ?? null;
  if (user !== null && (typeof user !== 'string' || user.trim() === '' || /[\r\n]/.test(user)))
    throw new NotifySettingError(`${where}.user`, 'must be the SMTP user name');
  const password =
    value.password === undefined || value.password === null
      ? null
      : parseSecretRef(value.password, `${where}.password`, baseDir, 'never');
  if ((user === null) !== (password === null))
    throw new NotifySettingError(
      where,
      user === null ? 'a password needs a user' : 'a user needs a password',
      'set both user and password (env:VARIABLE or file:PATH), or neither for a relay without AUTH',
    );
  return {
    host: bare,
    port: portNumber,
    tls: tls as TlsMode,
    from: from.trim(),
    user: user === null ? null : (user as string).trim(),
    password,
  };
}

function isFromAddress(text: string): boolean {
  if (/[\r\n]/.test(text)) return false;
  if (EMAIL_ADDRESS.test(text)) return true;
  const m = /^([^<>\r\n"]{1,100}|"[^"\r\n]{1,100}")\s*<([^<>]+)>$/.exec(text);
  return m !== null && EMAIL_ADDRESS.test(m[2]!);
}

export function parseSecurityContacts(v: unknown, where: string): SecurityContact[] {
  let value: unknown = v;
  if (typeof v === 'string') {
    const t = v.trim();
    value = t.startsWith('[') ? structured(t, where, 'a list') : t.split(/[\s,]+/).filter(Boolean);
  }
  if (!Array.isArray(value))
    throw new NotifySettingError(
      where,
      'must be a list of email addresses and { webhook, format, secret } entries',
    );
  const seen = new Set<string>();
  return value.map((item, i) => {
    const at = `${where}[${i}]`;
    let contact: SecurityContact;
    if (typeof item === 'string') {
      if (!EMAIL_ADDRESS.test(item.trim()))
        throw new NotifySettingError(at, 'is not an email address (one plain address)');
      contact = { kind: 'email', address: item.trim() };
    } else if (isObject(item)) {
      for (const k of Object.keys(item))
        if (!['webhook', 'format', 'secret'].includes(k))
          throw new NotifySettingError(
            `${at}.${k.slice(0, 40)}`,
            'unknown key (webhook, format, secret)',
          );
      contact = {
        kind: 'webhook',
        webhook: parseWebhookUrl(item.webhook, `${at}.webhook`),
        format: parseFormat(item.format, `${at}.format`),
        secret: parseSecretName(item.secret, `${at}.secret`),
      };
    } else {
      throw new NotifySettingError(at, 'must be an email address or { webhook, format, secret }');
    }
    const key = contact.kind === 'email' ? contact.address.toLowerCase() : contact.webhook;
    if (seen.has(key)) throw new NotifySettingError(at, 'is listed twice');
    seen.add(key);
    return contact;
  });
}

/** Never quotes the URL: its path is often the receiver's secret. */
export function parseWebhookUrl(v: unknown, where: string): string {
  if (typeof v !== 'string') throw new NotifySettingError(where, 'must be an https:// URL');
  let u: URL;
  try {
    u = new URL(v.trim());
  } catch {
    throw new NotifySettingError(where, 'is not a URL');
  }
  if (u.username || u.password)
    throw new NotifySettingError(where, 'must not carry a user name or password');
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname)))
    throw new NotifySettingError(where, 'must be https:// (http:// only on this machine)');
  return v.trim();
}

function parseFormat(v: unknown, where: string): WebhookFormat {
  if (v === undefined || v === null) return 'standard';
  if (v === 'standard' || v === 'slack') return v;
  throw new NotifySettingError(where, 'must be standard or slack');
}

function parseSecretName(v: unknown, where: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.startsWith('whsec_') || !SECRET_NAME.test(v))
    throw new NotifySettingError(where, 'must name a secret of webhook_secrets (not the secret)');
  return v;
}

/** `5m`, or `off`/`none`/false for no reminder. */
export function parseReminder(v: unknown, where: string): number | null {
  if (v === false || v === 'off' || v === 'none') return null;
  return parseBoundedDuration(v, where, 60_000, 24 * 3_600_000);
}

export function parseGiveUpAfter(v: unknown, where: string): number {
  return parseBoundedDuration(v, where, 60_000, 7 * 24 * 3_600_000);
}

function parseBoundedDuration(v: unknown, where: string, min: number, max: number): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (err) {
    if (err instanceof DurationError) throw new NotifySettingError(where, err.message);
    throw err;
  }
  if (ms < min || ms > max)
    throw new NotifySettingError(
      where,
      `must be between ${min / 60_000}m and ${max >= 86_400_000 ? `${max / 86_400_000}d` : `${max / 3_600_000}h`}`,
    );
  return ms;
}
