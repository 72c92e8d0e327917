import { isLoopbackHost } from '../../api/loopback.js';
import { type Checker, checkKeys, checkToken, describe } from './checks.js';
import type { NotifyTarget } from './types.js';
import { childPath, type YamlEntry } from './yaml-tree.js';

/** The top-level `notify` section: where events are sent. A webhook URL is a secret: never quoted. */

const NOTIFY_KEYS = ['webhook'] as const;

export function checkNotify(c: Checker, entry: YamlEntry | undefined): NotifyTarget[] {
  if (!entry) return [];
  const v = entry.value;
  if (v.kind === 'invalid') return [];
  if (v.kind === 'scalar' && v.value === null) return [];
  if (v.kind !== 'seq') {
    c.add(
      'notify',
      v.loc,
      `must be a list such as [{ webhook: https://hooks.example.com/jit }], not ${describe(v, false)}`,
    );
    return [];
  }
  const targets: NotifyTarget[] = [];
  const seen = new Map<string, number>();
  v.items.forEach((item, i) => {
    const path = childPath('notify', i);
    if (item.kind === 'invalid') return;
    if (item.kind !== 'map') {
      c.add(path, item.loc, `each entry is { webhook: https://… }, not ${describe(item, false)}`);
      return;
    }
    checkKeys(c, item, path, NOTIFY_KEYS);
    const hook = item.entries.get('webhook');
    if (!hook) {
      c.add(childPath(path, 'webhook'), item.loc, 'missing `webhook`: the URL to POST events to');
      return;
    }
    const url = checkToken(c, hook, path, 'an https:// URL', true);
    if (url === undefined) return;
    const at = childPath(path, 'webhook');
    const problem = webhookProblem(url);
    if (problem) {
      c.add(at, hook.value.loc, problem);
      return;
    }
    const first = seen.get(url);
    if (first !== undefined) {
      c.add(at, hook.value.loc, `the same webhook is already listed at notify[${first}]`);
      return;
    }
    seen.set(url, i);
    targets.push({ webhook: url });
  });
  return targets;
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
