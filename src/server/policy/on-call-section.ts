import { type Checker, checkDuration, checkKeys, checkToken, describe } from './checks.js';
import type { OnCallSource } from './types.js';
import { childPath, type YamlEntry } from './yaml-tree.js';

/**
 * The top-level `on_call` section: where the broker reads who is on call (rules with
 * `on_call: true`), and how often it reads it again. A file path is relative to the policy file;
 * a URL must be https:// (http:// only on this machine), like webhooks.
 */

const ON_CALL_KEYS = ['source', 'refresh'] as const;
const DEFAULT_REFRESH_MS = 5 * 60_000;
const MIN_REFRESH_MS = 10_000;

export function checkOnCall(c: Checker, entry: YamlEntry | undefined): OnCallSource | undefined {
  if (!entry) return undefined;
  const v = entry.value;
  if (v.kind === 'invalid') return undefined;
  if (v.kind !== 'map') {
    c.add(
      'on_call',
      v.loc,
      `must be a mapping such as { source: oncall.txt, refresh: 5m }, not ${describe(v, false)}`,
    );
    return undefined;
  }
  checkKeys(c, v, 'on_call', ON_CALL_KEYS);
  const sourceEntry = v.entries.get('source');
  if (!sourceEntry) {
    c.add('on_call.source', entry.keyLoc, 'missing `source`: a file or an https:// URL');
    return undefined;
  }
  const source = checkToken(c, sourceEntry, 'on_call', 'a file path or an https:// URL', true);
  const refreshEntry = v.entries.get('refresh');
  const refreshMs = refreshEntry
    ? checkDuration(c, refreshEntry, 'on_call', 24 * 3_600_000)
    : DEFAULT_REFRESH_MS;
  if (refreshMs !== undefined && refreshMs < MIN_REFRESH_MS && refreshEntry) {
    c.add(childPath('on_call', 'refresh'), refreshEntry.value.loc, 'must be at least 10s');
    return undefined;
  }
  if (source === undefined || refreshMs === undefined) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      c.add('on_call.source', sourceEntry.value.loc, 'is not a URL');
      return undefined;
    }
    const local = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
      c.add(
        'on_call.source',
        sourceEntry.value.loc,
        'must use https:// (plain http:// only for a server on this machine)',
      );
      return undefined;
    }
  }
  return { source, refreshMs };
}
