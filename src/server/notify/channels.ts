import { createHash } from 'node:crypto';
import type { Secret } from '../../api/secret.js';
import { ConfigError } from '../config.js';
import type { NotifyTarget, WebhookFormat } from '../policy/types.js';
import { createMailer, type Mailer } from './email.js';
import type { RoutedTarget, SecurityRoutes } from './route.js';
import { type NotificationSettings, NotifySettingError, resolveSecret } from './settings.js';

/**
 * The policy's routes and the broker's settings, resolved once at start: each webhook with its
 * signing secret, the SMTP relay, the security contacts. Everything that cannot work stops the
 * broker here, naming the setting: a signed webhook whose secret is missing, an email route
 * without SMTP. The outbox stores webhooks by key (a hash of the URL), never the URL.
 */

export interface WebhookChannel {
  key: string;
  url: string;
  /** For logs: a webhook's path is often its secret. */
  origin: string;
  format: WebhookFormat;
  secret: Secret | null;
}

export interface Channels {
  targets: RoutedTarget[];
  security: SecurityRoutes;
  webhooks: Map<string, WebhookChannel>;
  mailer: Mailer | null;
  /** Whether anything at all is routed (no policy entries, no contacts: nothing to do). */
  any: boolean;
}

export const webhookKey = (url: string) =>
  `wh_${createHash('sha256').update(url).digest('base64url').slice(0, 22)}`;

export async function openChannels(
  targets: readonly NotifyTarget[],
  settings: NotificationSettings,
  opts: {
    env: Readonly<Record<string, string | undefined>>;
    /** The domain of Message-IDs (the public URL's host, when configured). */
    mailDomain: string;
    timeoutMs: number;
  },
): Promise<Channels> {
  const secrets = new Map<string, Secret>();
  const secret = (name: string | null, where: string, format: WebhookFormat): Secret | null => {
    const n = name ?? 'default';
    const ref = settings.webhookSecrets[n];
    if (!ref) {
      // Slack verifies nothing: its URL is the credential. Anything else must be verifiable.
      if (name === null && format === 'slack') return null;
      throw new ConfigError(
        name === null
          ? `${where}: webhooks are signed (Standard Webhooks), and no secret is configured for it`
          : `${where}: secret ${JSON.stringify(name)} is not in the broker's webhook_secrets`,
        name === null
          ? 'set webhook_secrets: { default: env:JITCTL_WEBHOOK_SECRET } in the broker config (make one with: echo "whsec_$(openssl rand -base64 32)"), name one with `secret:`, or write `format: slack` for a Slack incoming webhook'
          : `add it: webhook_secrets: { ${name}: env:VARIABLE } (the variable holds whsec_…)`,
      );
    }
    let s = secrets.get(n);
    if (!s) {
      try {
        s = resolveSecret(ref, `webhook_secrets.${n}`, opts.env, 'webhook');
      } catch (err) {
        if (err instanceof NotifySettingError)
          throw new ConfigError(`${err.where}: ${err.message}`, err.hint);
        throw err;
      }
      secrets.set(n, s);
    }
    return s;
  };

  const webhooks = new Map<string, WebhookChannel>();
  const addHook = (url: string, format: WebhookFormat, name: string | null, where: string) => {
    const key = webhookKey(url);
    if (!webhooks.has(key))
      webhooks.set(key, {
        key,
        url,
        origin: new URL(url).origin,
        format,
        secret: secret(name, where, format),
      });
    return key;
  };

  const routed: RoutedTarget[] = targets.map((t, i) =>
    t.kind === 'webhook'
      ? { ...t, key: addHook(t.webhook, t.format, t.secret, `notify[${i}]`) }
      : t,
  );
  const security: SecurityRoutes = {
    emails: settings.securityContacts.flatMap((c) => (c.kind === 'email' ? [c.address] : [])),
    webhooks: settings.securityContacts.flatMap((c, i) =>
      c.kind === 'webhook'
        ? [addHook(c.webhook, c.format, c.secret, `security_contacts[${i}]`)]
        : [],
    ),
  };

  const emailRoutes = targets.some((t) => t.kind === 'email') || security.emails.length > 0;
  if (emailRoutes && !settings.smtp) {
    const i = targets.findIndex((t) => t.kind === 'email');
    throw new ConfigError(
      `${i >= 0 ? `the policy's notify[${i}]` : 'security_contacts'} sends email, and the broker has no smtp setting`,
      'set smtp: { host, from, user, password: env:VARIABLE } in the broker config (docs/operations.md "Email")',
    );
  }
  let mailer: Mailer | null = null;
  if (settings.smtp && emailRoutes) {
    let password: Secret | null = null;
    if (settings.smtp.password) {
      try {
        password = resolveSecret(settings.smtp.password, 'smtp.password', opts.env, 'password');
      } catch (err) {
        if (err instanceof NotifySettingError)
          throw new ConfigError(`${err.where}: ${err.message}`, err.hint);
        throw err;
      }
    }
    mailer = await createMailer(settings.smtp, password, {
      timeoutMs: opts.timeoutMs,
      domain: opts.mailDomain,
    });
  }
  return {
    targets: routed,
    security,
    webhooks,
    mailer,
    any: routed.length > 0 || settings.securityContacts.length > 0,
  };
}
