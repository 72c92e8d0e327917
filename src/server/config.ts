import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import { formatDuration } from '../api/duration.js';
import { Secret } from '../api/secret.js';
import {
  type AuditStreamSettings,
  DEFAULT_CHECKPOINT_INTERVAL_MS,
  parseAuditSinks,
  parseCheckpointInterval,
} from './audit/sinks/settings.js';
import {
  bool,
  ConfigError,
  db,
  durationBetween,
  type ListenAddress,
  list,
  listen,
  notifySetting,
  oneOf,
  type Parser,
  path,
  rateLimits,
  resourceServers,
  type Source,
  stepUp,
  str,
  trustedIssuers,
  trustProxy,
  uiRedirectUri,
  url,
} from './config-parsers.js';
import type { TrustedIssuer } from './federation/config.js';
import { DEFAULT_RATE_LIMITS, type RateLimits } from './limits/settings.js';
import { SIGNING_ALGS, type SigningAlg } from './mint/keys.js';
import {
  defaultNotificationSettings,
  type NotificationSettings,
  parseGiveUpAfter,
  parseReminder,
  parseSecurityContacts,
  parseSmtp,
  parseWebhookSecrets,
} from './notify/settings.js';
import { closest } from './policy/suggest.js';
import type { StepUpRule } from './policy/types.js';
import type { ResourceServer } from './revocation/resource-servers.js';

/**
 * The broker's settings. Every key can come from a flag (listen, db, policy, oidc-issuer, oidc-client-id, config, --dev/--data-dir),
 * a `JITCTL_SERVER_<KEY>` environment variable, or the `--config` file (YAML or JSON, snake_case
 * keys), in that order of precedence, then the default. Unknown keys and bad values stop the broker
 * with the key's name and how to fix it: a typo in `auditors` must not silently open or close the
 * audit log. docs/operations.md documents each key.
 */

export interface ServerConfig {
  listen: ListenAddress;
  /** `sqlite:ABSOLUTE_PATH` or `postgres://…` */
  db: string;
  /** Absolute path of the policy file; undefined only with --dev (the demo policy). */
  policy: string | undefined;
  oidcIssuer: string | undefined;
  oidcClientId: string | undefined;
  /** `aud` of JWT access tokens; undefined: the public URL. */
  oidcAudience: string | undefined;
  oidcScopes: string[];
  groupsClaim: string;
  acrLevels: string[];
  reviewStepUp: StepUpRule | null;
  auditors: string[];
  admins: string[];
  /** The broker's URL as clients and relying parties see it; undefined: from the listen address. */
  publicUrl: string | undefined;
  /** `db`, or the absolute path of a private JWK file. */
  signingKey: string;
  signingAlg: SigningAlg;
  logLevel: LogLevel;
  trustProxy: boolean | number | string[];
  /** External OIDC issuers whose tokens pipelines exchange for a session (RFC 8693); docs/pipelines.md. */
  trustedIssuers: TrustedIssuer[];
  dev: boolean;
  /** --dev only: where the database and the identity provider's keys live. */
  dataDir: string;
  /** The review pages' sign-in (docs/operations.md "The review pages"); see {@link UiSettings}. */
  ui: UiSettings;
  /** Abuse limits per door (docs/operations.md "Rate limits"). */
  rateLimits: RateLimits;
  /** Retire published database keys once nothing they signed is valid (docs/operations.md "Keys"). */
  keyAutoRetire: boolean;
  /** Signing secrets, SMTP, security contacts, reminder and retry settings (notify/settings.ts). */
  notifications: NotificationSettings;
  /** Audit sinks and checkpoints (audit/sinks/settings.ts). */
  audit: AuditStreamSettings;
  /**
   * Relying parties that may introspect credentials and follow revocations (docs/credentials.md
   * "Relying parties"); revocation/resource-servers.ts.
   */
  resourceServers: ResourceServer[];
}

/**
 * The broker as a web client of the identity provider, for the review pages under `/ui/`
 * (authorization code + PKCE). Without a client id the pages say how to set them up; `--dev`
 * registers one in its built-in provider.
 */
export interface UiSettings {
  clientId: string | undefined;
  /** Absent for a public client (PKCE alone). Never printed: a Secret. */
  clientSecret: Secret | undefined;
  /** undefined: `<public_url>/ui/auth/callback`. */
  redirectUri: string | undefined;
  /** How long a browser session lasts, from sign-in (absolute, not sliding). */
  sessionTtlMs: number;
}

export { ConfigError, type ListenAddress, UI_CALLBACK_PATH } from './config-parsers.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

interface KeySpec<T> {
  parse: Parser<T>;
  /** The flag that sets it, when there is one. */
  flag?: string;
}

const KEYS = {
  listen: { parse: listen, flag: '--listen' },
  db: { parse: db, flag: '--db' },
  policy: { parse: path, flag: '--policy' },
  oidc_issuer: { parse: url({ keepTrailingSlash: true }), flag: '--oidc-issuer' },
  oidc_client_id: { parse: str(), flag: '--oidc-client-id' },
  oidc_audience: { parse: str() },
  oidc_scopes: { parse: list },
  groups_claim: { parse: str() },
  acr_levels: { parse: list },
  review_step_up: { parse: stepUp },
  auditors: { parse: list },
  admins: { parse: list },
  public_url: { parse: url({ allowHttp: true }) },
  signing_key: { parse: (v: unknown, src: Source) => (v === 'db' ? 'db' : path(v, src)) },
  signing_alg: { parse: oneOf(SIGNING_ALGS) },
  log_level: { parse: oneOf(LOG_LEVELS) },
  trust_proxy: { parse: trustProxy },
  trusted_issuers: { parse: trustedIssuers },
  dev: { parse: bool, flag: '--dev' },
  data_dir: { parse: path, flag: '--data-dir' },
  // The review pages (/ui/): the broker as a web client of the identity provider.
  ui_client_id: { parse: str() },
  ui_client_secret: { parse: str('a client secret') },
  ui_redirect_uri: { parse: uiRedirectUri },
  ui_session_ttl: { parse: durationBetween(5 * 60_000, 24 * 3_600_000) },
  rate_limits: { parse: rateLimits },
  key_auto_retire: { parse: bool },
  // Notifications (docs/operations.md "Notifications").
  webhook_secrets: { parse: notifySetting(parseWebhookSecrets) },
  smtp: { parse: notifySetting(parseSmtp) },
  security_contacts: { parse: notifySetting(parseSecurityContacts) },
  expiry_reminder: { parse: notifySetting(parseReminder) },
  notify_give_up_after: { parse: notifySetting(parseGiveUpAfter) },
  audit_sinks: { parse: notifySetting(parseAuditSinks) },
  audit_checkpoint_interval: { parse: notifySetting(parseCheckpointInterval) },
  // Revocation (docs/credentials.md "Relying parties").
  resource_servers: { parse: resourceServers },
} satisfies Record<string, KeySpec<unknown>>;

export type ConfigKey = keyof typeof KEYS;
export const CONFIG_KEYS = Object.keys(KEYS) as ConfigKey[];

export const envName = (key: string) => `JITCTL_SERVER_${key.toUpperCase()}`;
/** The variable naming the config file (the one setting that cannot live in the file). */
export const CONFIG_ENV = 'JITCTL_SERVER_CONFIG';

export interface ConfigInput {
  /** Values from flags, by config key (strings, or true for --dev). */
  flags: Partial<Record<ConfigKey, string | boolean>>;
  /** --config */
  configFile?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /**
   * `keys`: for `jitctl server keys`, which needs the database and the key settings only, so the
   * settings the broker needs to serve (policy, identity provider) are not required.
   */
  purpose?: 'serve' | 'keys';
}

/** Reads and validates the broker's settings from flags, environment and the config file. */
export async function loadServerConfig(input: ConfigInput): Promise<ServerConfig> {
  const raw = new Map<ConfigKey, { value: unknown; src: Source }>();

  const fileName = input.configFile ?? input.env[CONFIG_ENV];
  if (fileName) {
    const file = resolve(input.cwd, fileName);
    const where = input.configFile ? `--config ${fileName}` : `${CONFIG_ENV}=${fileName}`;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${where}: cannot read ${file}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parse(text, { prettyErrors: true, uniqueKeys: true });
    } catch (err) {
      if (err instanceof YAMLParseError) throw new ConfigError(`${file}: ${err.message}`);
      throw err;
    }
    if (doc === null || doc === undefined) doc = {};
    if (typeof doc !== 'object' || Array.isArray(doc))
      throw new ConfigError(`${file}: must hold a mapping of settings (key: value)`);
    for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
      if (!(key in KEYS)) {
        throw new ConfigError(
          `${file}: unknown setting ${JSON.stringify(key)}`,
          suggest(key) ?? `settings: ${CONFIG_KEYS.join(', ')}`,
        );
      }
      raw.set(key as ConfigKey, {
        value,
        src: { where: `${file}: ${key}`, baseDir: dirname(file) },
      });
    }
  }

  for (const [name, value] of Object.entries(input.env)) {
    if (!name.startsWith('JITCTL_SERVER_') || name === CONFIG_ENV || value === undefined) continue;
    const key = name.slice('JITCTL_SERVER_'.length).toLowerCase();
    if (!(key in KEYS)) {
      const meant = suggest(key);
      throw new ConfigError(
        `unknown environment variable ${name}`,
        meant
          ? meant.replace(/`(\w+)`/, (_, k: string) => `\`${envName(k)}\``)
          : `variables: ${CONFIG_KEYS.map(envName).join(', ')}`,
      );
    }
    if (value === '') continue;
    raw.set(key as ConfigKey, { value, src: { where: name, baseDir: input.cwd } });
  }

  for (const [key, value] of Object.entries(input.flags) as [ConfigKey, unknown][]) {
    if (value === undefined) continue;
    const spec = KEYS[key] as KeySpec<unknown>;
    raw.set(key, { value, src: { where: spec.flag ?? key, baseDir: input.cwd } });
  }

  const get = <K extends ConfigKey>(key: K): ReturnType<(typeof KEYS)[K]['parse']> | undefined => {
    const entry = raw.get(key);
    if (!entry) return undefined;
    return (KEYS[key].parse as Parser<unknown>)(entry.value, entry.src) as ReturnType<
      (typeof KEYS)[K]['parse']
    >;
  };

  const dev = get('dev') ?? false;
  const dataDir = get('data_dir') ?? resolve(input.cwd, '.jitctl-dev');
  const config: ServerConfig = {
    listen: get('listen') ?? { host: '127.0.0.1', port: 8787 },
    db: get('db') ?? `sqlite:${dev ? join(dataDir, 'jitctl.db') : resolve(input.cwd, 'jitctl.db')}`,
    policy: get('policy'),
    oidcIssuer: get('oidc_issuer'),
    oidcClientId: get('oidc_client_id'),
    oidcAudience: get('oidc_audience'),
    oidcScopes: get('oidc_scopes') ?? ['openid', 'profile', 'email', 'offline_access'],
    groupsClaim: get('groups_claim') ?? 'groups',
    acrLevels: get('acr_levels') ?? ['pwd', 'mfa'],
    reviewStepUp: raw.has('review_step_up')
      ? (get('review_step_up') ?? null)
      : { acr: 'mfa', maxAgeMs: 5 * 60_000 },
    auditors: get('auditors') ?? ['auditors'],
    admins: get('admins') ?? [],
    publicUrl: get('public_url'),
    signingKey: get('signing_key') ?? 'db',
    signingAlg: get('signing_alg') ?? 'ES256',
    logLevel: get('log_level') ?? (dev ? 'warn' : 'info'),
    trustProxy: get('trust_proxy') ?? false,
    trustedIssuers: get('trusted_issuers') ?? [],
    dev,
    dataDir,
    ui: {
      clientId: get('ui_client_id'),
      clientSecret: raw.has('ui_client_secret') ? new Secret(get('ui_client_secret')!) : undefined,
      redirectUri: get('ui_redirect_uri'),
      sessionTtlMs: get('ui_session_ttl') ?? 3_600_000,
    },
    rateLimits: get('rate_limits') ?? { ...DEFAULT_RATE_LIMITS },
    keyAutoRetire: get('key_auto_retire') ?? true,
    notifications: {
      ...defaultNotificationSettings(),
      ...(raw.has('webhook_secrets') ? { webhookSecrets: get('webhook_secrets')! } : {}),
      ...(raw.has('smtp') ? { smtp: get('smtp') ?? null } : {}),
      ...(raw.has('security_contacts') ? { securityContacts: get('security_contacts')! } : {}),
      ...(raw.has('expiry_reminder') ? { reminderBeforeMs: get('expiry_reminder') ?? null } : {}),
      ...(raw.has('notify_give_up_after') ? { giveUpAfterMs: get('notify_give_up_after')! } : {}),
    },
    audit: {
      sinks: get('audit_sinks') ?? [],
      checkpointIntervalMs: raw.has('audit_checkpoint_interval')
        ? (get('audit_checkpoint_interval') ?? null)
        : DEFAULT_CHECKPOINT_INTERVAL_MS,
    },
    resourceServers: get('resource_servers') ?? [],
  };

  if (!dev && raw.has('data_dir'))
    throw new ConfigError(`${raw.get('data_dir')!.src.where}: only applies with --dev`);
  if (!dev && input.purpose !== 'keys') {
    const missing: string[] = [];
    if (!config.policy) missing.push('policy (--policy FILE)');
    if (!config.oidcIssuer) missing.push('oidc_issuer (--oidc-issuer URL)');
    if (!config.oidcClientId) missing.push('oidc_client_id (--oidc-client-id ID)');
    if (missing.length > 0) {
      throw new ConfigError(
        `the broker needs ${missing.join(', ')}`,
        'set them as flags, JITCTL_SERVER_* variables or in --config FILE; or try `jitctl server --dev`',
      );
    }
  } else if (dev) {
    for (const key of ['oidc_issuer', 'oidc_client_id'] as const) {
      if (raw.has(key))
        throw new ConfigError(
          `${raw.get(key)!.src.where}: --dev uses its built-in identity provider; remove ${key}`,
        );
    }
  }
  if (dev) {
    for (const key of ['ui_client_id', 'ui_client_secret', 'ui_redirect_uri'] as const) {
      if (raw.has(key))
        throw new ConfigError(
          `${raw.get(key)!.src.where}: --dev registers the review pages in its built-in identity provider; remove ${key}`,
        );
    }
  } else if (!config.ui.clientId) {
    for (const key of ['ui_client_secret', 'ui_redirect_uri'] as const) {
      if (raw.has(key))
        throw new ConfigError(
          `${raw.get(key)!.src.where}: set ui_client_id too (the web client ${key} belongs to)`,
          'docs/operations.md "The review pages" shows how to register the broker as a web client',
        );
    }
  }
  if (config.reviewStepUp && !config.acrLevels.includes(config.reviewStepUp.acr)) {
    throw new ConfigError(
      `review_step_up.acr ${JSON.stringify(config.reviewStepUp.acr)} is not in acr_levels (${config.acrLevels.join(', ')})`,
      'list it in acr_levels (weakest first), or change review_step_up',
    );
  }
  if (config.reviewStepUp && config.reviewStepUp.maxAgeMs < 1000)
    throw new ConfigError(
      `review_step_up.max_age ${formatDuration(config.reviewStepUp.maxAgeMs)} is too short`,
    );
  if (
    config.oidcIssuer &&
    config.publicUrl &&
    config.oidcIssuer.replace(/\/+$/, '') === config.publicUrl
  )
    throw new ConfigError('oidc_issuer must not be the broker itself (public_url)');
  config.trustedIssuers.forEach((t, i) => {
    const where = `trusted_issuers[${i}]`;
    if (t.acr !== null && !config.acrLevels.includes(t.acr))
      throw new ConfigError(
        `${where}.acr ${JSON.stringify(t.acr)} is not in acr_levels (${config.acrLevels.join(', ')})`,
        'list it in acr_levels, or remove acr from the entry',
      );
    if (config.publicUrl && t.issuer.replace(/\/+$/, '') === config.publicUrl)
      throw new ConfigError(`${where}.issuer must not be the broker itself (public_url)`);
  });
  config.resourceServers.forEach((r, i) => {
    if (
      r.trustedIssuer !== undefined &&
      !config.trustedIssuers.some((t) => t.name === r.trustedIssuer)
    )
      throw new ConfigError(
        `resource_servers[${i}].trusted_issuer ${JSON.stringify(r.trustedIssuer)} is not the name of a trusted_issuers entry`,
        config.trustedIssuers.length > 0
          ? `entries: ${config.trustedIssuers.map((t) => t.name).join(', ')}`
          : 'add the issuer of its tokens to trusted_issuers (docs/pipelines.md), or give it a client secret',
      );
  });
  return config;
}

function suggest(key: string): string | undefined {
  const meant = closest(key, CONFIG_KEYS);
  return meant ? `did you mean \`${meant}\`?` : undefined;
}

/** The URL the broker is reached at when public_url is not set: its listen address. */
export function defaultPublicUrl(address: { host: string; port: number }): string {
  const host =
    address.host === '0.0.0.0' || address.host === '::'
      ? '127.0.0.1'
      : address.host.includes(':')
        ? `[${address.host}]`
        : address.host;
  return `http://${host}:${address.port}`;
}
