import { isAbsolute, resolve } from 'node:path';
import { DurationError, formatDuration, parseDuration } from '../../../api/duration.js';
import {
  NotifySettingError,
  parseSecretRef,
  parseWebhookUrl,
  type SecretRef,
} from '../../notify/settings.js';
import { SECRET_NAME } from '../../policy/notify-section.js';

/**
 * The broker's audit sinks (`audit_sinks` in the config; docs/operations.md "Audit sinks") and
 * its checkpoint schedule (`audit_checkpoint_interval`). A sink is a JSON-lines file (rotated by
 * size), a signed webhook (Standard Webhooks, with a secret of `webhook_secrets`), or a Splunk
 * HTTP Event Collector (a token from the environment or a file). Errors name the entry and key
 * (`audit_sinks[1].max_size`) and never quote a secret or a URL's path.
 */

export type SinkFormat = 'jsonl' | 'ocsf';
export type SinkStart = 'beginning' | 'end';

interface SinkCommon {
  /** Names the sink's cursor and its metrics: renaming a sink starts it again from `start`. */
  name: string;
  format: SinkFormat;
  /** Where a new sink starts: the first event ever (default), or the log's end at its first start. */
  start: SinkStart;
  /** /readyz fails while the sink lags more than this (null: lag never fails readiness). */
  maxLagMs: number | null;
}

export interface FileSinkSpec extends SinkCommon {
  kind: 'file';
  /** Absolute path of the current file; rotated ones are `<path>.1` (newest) … `<path>.<keep>`. */
  path: string;
  maxBytes: number;
  keep: number;
}

export interface WebhookSinkSpec extends SinkCommon {
  kind: 'webhook';
  url: string;
  /** A name of `webhook_secrets` (default: `default`). */
  secret: string;
  /** Events per POST. */
  batch: number;
}

export interface HecSinkSpec extends SinkCommon {
  kind: 'splunk_hec';
  url: string;
  token: SecretRef;
  index: string | null;
  sourcetype: string | null;
  batch: number;
}

export type SinkSpec = FileSinkSpec | WebhookSinkSpec | HecSinkSpec;

export interface AuditStreamSettings {
  sinks: SinkSpec[];
  /** How often the chain's head is signed when it has moved (null: only on demand). */
  checkpointIntervalMs: number | null;
}

export const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;
export const DEFAULT_KEEP = 10;
export const DEFAULT_BATCH = 100;
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 3_600_000;

const COMMON = ['name', 'format', 'start', 'max_lag'];
const KEYS: Record<SinkSpec['kind'], string[]> = {
  file: ['file', 'max_size', 'keep', ...COMMON],
  webhook: ['webhook', 'secret', 'batch', ...COMMON],
  splunk_hec: ['splunk_hec', 'token', 'index', 'sourcetype', 'batch', ...COMMON],
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const EXAMPLE =
  'e.g. audit_sinks: [{ name: archive, file: /var/log/jitctl/audit.jsonl }, { name: siem, webhook: https://siem.example.com/jitctl }]';

export function parseAuditSinks(v: unknown, where: string, baseDir: string): SinkSpec[] {
  let value = v;
  if (typeof v === 'string') {
    try {
      value = JSON.parse(v);
    } catch {
      throw new NotifySettingError(where, 'must be a list of sinks (JSON in a variable)', EXAMPLE);
    }
  }
  if (value === null || value === false || value === 'none') return [];
  if (!Array.isArray(value))
    throw new NotifySettingError(where, 'must be a list of sinks', EXAMPLE);
  if (value.length > 20) throw new NotifySettingError(where, 'holds more than 20 sinks');
  const sinks = value.map((item, i) => parseSink(item, `${where}[${i}]`, baseDir));
  const names = new Set<string>();
  const files = new Set<string>();
  sinks.forEach((s, i) => {
    if (names.has(s.name))
      throw new NotifySettingError(`${where}[${i}].name`, `${s.name} is used by two sinks`);
    names.add(s.name);
    if (s.kind === 'file') {
      if (files.has(s.path))
        throw new NotifySettingError(`${where}[${i}].file`, 'is written by another sink too');
      files.add(s.path);
    }
  });
  return sinks;
}

function parseSink(item: unknown, where: string, baseDir: string): SinkSpec {
  if (!isObject(item))
    throw new NotifySettingError(
      where,
      'must be a mapping with a name and one of file, webhook, splunk_hec',
      EXAMPLE,
    );
  const kinds = (['file', 'webhook', 'splunk_hec'] as const).filter((k) => item[k] !== undefined);
  if (kinds.length !== 1)
    throw new NotifySettingError(
      where,
      kinds.length === 0
        ? 'says nowhere to send: give one of file, webhook, splunk_hec'
        : `gives ${kinds.join(' and ')}: one sink sends to one place`,
    );
  const kind = kinds[0]!;
  for (const k of Object.keys(item))
    if (!KEYS[kind].includes(k))
      throw new NotifySettingError(
        `${where}.${k.slice(0, 40)}`,
        `unknown key for a ${kind} sink (${KEYS[kind].join(', ')})`,
      );
  const name = item.name;
  if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,39}$/.test(name))
    throw new NotifySettingError(
      `${where}.name`,
      'must be a name of lower-case letters, digits, - and _ (at most 40)',
      'it names the sink in metrics and keeps its place in the log: e.g. name: siem',
    );
  const common: SinkCommon = {
    name,
    format: oneOf(item.format, `${where}.format`, ['jsonl', 'ocsf'], 'jsonl'),
    start: oneOf(item.start, `${where}.start`, ['beginning', 'end'], 'beginning'),
    maxLagMs:
      item.max_lag === undefined || item.max_lag === null || item.max_lag === 'off'
        ? null
        : duration(item.max_lag, `${where}.max_lag`, 10_000, 7 * 86_400_000),
  };
  if (kind === 'file') {
    const file = item.file;
    if (typeof file !== 'string' || file.trim() === '' || file.includes('\0'))
      throw new NotifySettingError(`${where}.file`, 'must be a file path');
    return {
      kind,
      ...common,
      path: isAbsolute(file.trim()) ? file.trim() : resolve(baseDir, file.trim()),
      maxBytes:
        item.max_size === undefined ? DEFAULT_MAX_BYTES : size(item.max_size, `${where}.max_size`),
      keep: item.keep === undefined ? DEFAULT_KEEP : whole(item.keep, `${where}.keep`, 1, 1000),
    };
  }
  const batch =
    item.batch === undefined ? DEFAULT_BATCH : whole(item.batch, `${where}.batch`, 1, 1000);
  if (kind === 'webhook') {
    const secret = item.secret ?? 'default';
    if (typeof secret !== 'string' || secret.startsWith('whsec_') || !SECRET_NAME.test(secret))
      throw new NotifySettingError(
        `${where}.secret`,
        'must name a secret of webhook_secrets (not the secret)',
      );
    return {
      kind,
      ...common,
      url: parseWebhookUrl(item.webhook, `${where}.webhook`),
      secret,
      batch,
    };
  }
  const text = (v: unknown, key: string): string | null => {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string' || !/^[\w.:-]{1,100}$/.test(v))
      throw new NotifySettingError(`${where}.${key}`, 'must be a name (letters, digits, . : _ -)');
    return v;
  };
  if (item.token === undefined)
    throw new NotifySettingError(
      `${where}.token`,
      'is required: the HEC token, as env:VARIABLE or file:PATH',
    );
  return {
    kind,
    ...common,
    url: parseWebhookUrl(item.splunk_hec, `${where}.splunk_hec`),
    token: parseSecretRef(item.token, `${where}.token`, baseDir, 'never'),
    index: text(item.index, 'index'),
    sourcetype: text(item.sourcetype, 'sourcetype'),
    batch,
  };
}

function oneOf<T extends string>(v: unknown, where: string, values: readonly T[], dflt: T): T {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  throw new NotifySettingError(where, `must be ${values.join(' or ')}`);
}

function whole(v: unknown, where: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
    throw new NotifySettingError(where, `must be a whole number from ${min} to ${max}`);
  return n;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** `100MB`, `64MiB`, `500000` (bytes): from 1 KiB to 100 GiB. */
function size(v: unknown, where: string): number {
  const m = /^\s*(\d{1,15})\s*([a-z]{0,3})\s*$/i.exec(String(v));
  const unit = m ? UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Number(m[1]) * unit : Number.NaN;
  if (!(bytes >= 1024 && bytes <= 100 * 1024 ** 3))
    throw new NotifySettingError(
      where,
      'must be a size from 1KiB to 100GiB',
      'e.g. max_size: 100MB (units B, KB, KiB, MB, MiB, GB, GiB)',
    );
  return bytes;
}

function duration(v: unknown, where: string, min: number, max: number): number {
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
      `must be between ${formatDuration(min)} and ${formatDuration(max)}`,
    );
  return ms;
}

/** `1h` (the default), from 1m to 1d, or `off` for checkpoints on demand only. */
export function parseCheckpointInterval(v: unknown, where: string): number | null {
  if (v === false || v === 'off' || v === 'none') return null;
  return duration(v, where, 60_000, 86_400_000);
}
