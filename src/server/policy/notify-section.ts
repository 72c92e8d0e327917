import { isLoopbackHost } from '../../api/loopback.js';
import { NOTIFICATION_EVENT_TYPES } from '../notify/events.js';
import { type Checker, checkKeys, checkToken, describe, short } from './checks.js';
import { closest } from './suggest.js';
import type {
  EmailRecipient,
  EmailTarget,
  NotifyFilter,
  NotifyTarget,
  WebhookFormat,
  WebhookTarget,
} from './types.js';
import { childPath, type YamlEntry, type YamlValue } from './yaml-tree.js';

/**
 * The top-level `notify` section: which webhooks and mailboxes hear of which roles' events.
 * A webhook URL is a secret (a Slack webhook's path is its credential): no message quotes it.
 * Signing secrets live in the broker's settings; the policy only names one, so a policy file can
 * be reviewed and versioned by people who must not hold the secrets.
 */

const ENTRY_KEYS = ['webhook', 'email', 'format', 'secret', 'roles', 'events'] as const;
const FORMATS: readonly WebhookFormat[] = ['standard', 'slack'];
/** A name in the broker's `webhook_secrets` (the same rule as config keys there). */
export const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** One address, no display name: nothing that could end a header or add a recipient. */
export const EMAIL_ADDRESS = /^[^\s@<>()",;:\\[\]]{1,64}@[^\s@<>()",;:\\[\]]{1,253}$/;
const AUDIENCES = ['approvers', 'requester'] as const;
const EXAMPLE = '[{ webhook: https://hooks.example.com/jit }, { email: approvers }]';

type Map_ = Extract<YamlValue, { kind: 'map' }>;

export function checkNotify(
  c: Checker,
  entry: YamlEntry | undefined,
  /** Every role the file declares (valid or not), for `roles:` filters. */
  roleNames: ReadonlySet<string>,
): NotifyTarget[] {
  if (!entry) return [];
  const v = entry.value;
  if (v.kind === 'invalid') return [];
  if (v.kind === 'scalar' && v.value === null) return [];
  if (v.kind !== 'seq') {
    c.add('notify', v.loc, `must be a list such as ${EXAMPLE}, not ${describe(v, false)}`);
    return [];
  }
  const targets: NotifyTarget[] = [];
  const seen = new Map<string, number>();
  v.items.forEach((item, i) => {
    const path = childPath('notify', i);
    if (item.kind === 'invalid') return;
    if (item.kind !== 'map') {
      c.add(
        path,
        item.loc,
        `each entry is { webhook: https://… } or { email: approvers }, not ${describe(item, false)}`,
      );
      return;
    }
    checkKeys(c, item, path, ENTRY_KEYS);
    const hook = item.entries.get('webhook');
    const email = item.entries.get('email');
    if (hook && email) {
      c.add(
        path,
        item.loc,
        'an entry is either a `webhook` or an `email`, not both: write two entries',
      );
      return;
    }
    if (!hook && !email) {
      c.add(
        path,
        item.loc,
        'missing `webhook` (a URL to POST events to) or `email` (approvers, requester or addresses)',
      );
      return;
    }
    const filter = checkFilter(c, item, path, roleNames);
    const target = hook
      ? checkWebhook(c, item, hook, path, seen, i)
      : checkEmail(c, item, email!, path);
    if (target && filter) targets.push({ ...target, ...filter } as NotifyTarget);
  });
  return targets;
}

function checkWebhook(
  c: Checker,
  item: Map_,
  hook: YamlEntry,
  path: string,
  seen: Map<string, number>,
  index: number,
): Omit<WebhookTarget, keyof NotifyFilter> | undefined {
  let ok = true;
  const format = checkFormat(c, item.entries.get('format'), path);
  if (format === undefined) ok = false;
  const secret = checkSecretName(c, item.entries.get('secret'), path);
  if (secret === undefined) ok = false;
  const url = checkToken(c, hook, path, 'an https:// URL', true);
  if (url === undefined) return undefined;
  const at = childPath(path, 'webhook');
  const problem = webhookProblem(url);
  if (problem) {
    c.add(at, hook.value.loc, problem);
    return undefined;
  }
  const first = seen.get(url);
  if (first !== undefined) {
    c.add(at, hook.value.loc, `the same webhook is already listed at notify[${first}]`);
    return undefined;
  }
  seen.set(url, index);
  if (!ok) return undefined;
  return { kind: 'webhook', webhook: url, format: format!, secret: secret! };
}

function checkFormat(c: Checker, entry: YamlEntry | undefined, path: string) {
  if (!entry) return 'standard' as const;
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind === 'scalar' && typeof v.value === 'string' && FORMATS.includes(v.value as never))
    return v.value as WebhookFormat;
  const text = v.kind === 'scalar' && typeof v.value === 'string' ? v.value : undefined;
  const meant = text === undefined ? undefined : closest(text, FORMATS);
  c.add(
    childPath(path, 'format'),
    v.loc,
    meant
      ? `unknown format \`${short(text!)}\`; did you mean \`${meant}\`?`
      : `must be standard (jitctl's signed JSON event) or slack (an incoming-webhook message), not ${describe(v)}`,
  );
  return undefined;
}

/** `secret: NAME`: null when absent (the broker's `default` secret). Never echoes the value. */
function checkSecretName(c: Checker, entry: YamlEntry | undefined, path: string) {
  if (!entry) return null;
  const at = childPath(path, 'secret');
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'scalar' || typeof v.value !== 'string' || v.value === '') {
    c.add(
      at,
      v.loc,
      `must name a secret of the broker's webhook_secrets, not ${describe(v, false)}`,
    );
    return undefined;
  }
  if (v.value.startsWith('whsec_') || !SECRET_NAME.test(v.value)) {
    c.add(
      at,
      v.loc,
      v.value.startsWith('whsec_') || v.value.length > 64
        ? 'looks like a secret itself: a policy names the secret (e.g. `secret: chatops`) and the broker holds it (webhook_secrets in its settings); rotate this one, it has been written down'
        : "must be a name such as chatops (letters, digits, `.`, `_`, `-`) defined in the broker's webhook_secrets",
    );
    return undefined;
  }
  return v.value;
}

function checkEmail(
  c: Checker,
  item: Map_,
  entry: YamlEntry,
  path: string,
): Omit<EmailTarget, keyof NotifyFilter> | undefined {
  for (const key of ['format', 'secret'] as const) {
    const e = item.entries.get(key);
    if (e) c.add(childPath(path, key), e.keyLoc, `\`${key}\` is for webhooks, not email`);
  }
  const at = childPath(path, 'email');
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  const items: YamlValue[] = v.kind === 'seq' ? v.items : [v];
  if (v.kind === 'seq' && v.items.length === 0) {
    c.add(at, v.loc, 'names nobody: write approvers, requester or addresses');
    return undefined;
  }
  const to: EmailRecipient[] = [];
  const seen = new Map<string, number>();
  let ok = !item.entries.has('format') && !item.entries.has('secret');
  items.forEach((value, i) => {
    const where = v.kind === 'seq' ? childPath(at, i) : at;
    if (value.kind === 'invalid') {
      ok = false;
      return;
    }
    if (value.kind !== 'scalar' || typeof value.value !== 'string' || value.value === '') {
      c.add(
        where,
        value.loc,
        `must be approvers, requester, an email address or a list of them, not ${describe(value)}`,
      );
      ok = false;
      return;
    }
    const text = value.value;
    let recipient: EmailRecipient;
    if ((AUDIENCES as readonly string[]).includes(text)) {
      recipient = { kind: text as 'approvers' | 'requester' };
    } else if (EMAIL_ADDRESS.test(text)) {
      recipient = { kind: 'address', address: text };
    } else {
      const meant = text.includes('@') ? undefined : closest(text, AUDIENCES);
      c.add(
        where,
        value.loc,
        meant
          ? `unknown recipient \`${short(text)}\`; did you mean \`${meant}\`?`
          : text.includes('@')
            ? `\`${short(text)}\` is not an email address (one plain address such as oncall@example.com, no name or brackets)`
            : `unknown recipient \`${short(text)}\` (approvers, requester, or an email address)`,
      );
      ok = false;
      return;
    }
    const key = recipient.kind === 'address' ? recipient.address.toLowerCase() : recipient.kind;
    const first = seen.get(key);
    if (first !== undefined) {
      c.add(where, value.loc, `\`${short(text)}\` is already listed at [${first}]`);
      ok = false;
      return;
    }
    seen.set(key, i);
    to.push(recipient);
  });
  return ok ? { kind: 'email', to } : undefined;
}

function checkFilter(
  c: Checker,
  item: Map_,
  path: string,
  roleNames: ReadonlySet<string>,
): NotifyFilter | undefined {
  const roles = checkNames(c, item.entries.get('roles'), path, 'role', [...roleNames]);
  const events = checkNames(c, item.entries.get('events'), path, 'event', [
    ...NOTIFICATION_EVENT_TYPES,
  ]);
  if (roles === undefined || events === undefined) return undefined;
  return { roles, events };
}

/** A non-empty list of known names; null when the key is absent (everything). */
function checkNames(
  c: Checker,
  entry: YamlEntry | undefined,
  parent: string,
  what: 'role' | 'event',
  known: readonly string[],
): string[] | null | undefined {
  if (!entry) return null;
  const path = childPath(parent, entry.key);
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  const example = what === 'role' ? '[prod-deploy]' : '[request.created, request.approved]';
  if (v.kind !== 'seq') {
    c.add(path, v.loc, `must be a list such as ${example}, not ${describe(v)}`);
    return undefined;
  }
  if (v.items.length === 0) {
    c.add(path, v.loc, `is empty, so the entry would never apply: list ${what}s or remove the key`);
    return undefined;
  }
  const out: string[] = [];
  let ok = true;
  v.items.forEach((item, i) => {
    const at = childPath(path, i);
    if (item.kind === 'invalid') {
      ok = false;
      return;
    }
    if (item.kind !== 'scalar' || typeof item.value !== 'string') {
      c.add(
        at,
        item.loc,
        `must be ${what === 'event' ? 'an' : 'a'} ${what} name, not ${describe(item)}`,
      );
      ok = false;
      return;
    }
    const name = item.value;
    if (!known.includes(name)) {
      const meant = closest(name, known);
      c.add(
        at,
        item.loc,
        meant
          ? `unknown ${what} \`${short(name)}\`; did you mean \`${meant}\`?`
          : what === 'role'
            ? `there is no role \`${short(name)}\` in this policy`
            : `unknown event \`${short(name)}\` (events: ${known.join(', ')})`,
      );
      ok = false;
      return;
    }
    if (out.includes(name)) {
      c.add(at, item.loc, `\`${short(name)}\` is listed twice`);
      ok = false;
      return;
    }
    out.push(name);
  });
  return ok ? out : undefined;
}

function webhookProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a URL: write https://host/path';
  }
  if (url.username || url.password) {
    return 'must not carry a user name or password (use a secret path, as Slack webhooks do)';
  }
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    const host = url.hostname;
    if (isLoopbackHost(host)) return undefined;
    return 'must use https:// (plain http:// only for a receiver on this machine: 127.0.0.1, ::1, localhost)';
  }
  return `must be an https:// URL, not ${url.protocol}`;
}
