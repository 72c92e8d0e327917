import { isAbsolute, resolve } from 'node:path';
import { DurationError, formatDuration, parseDuration } from '../api/duration.js';
import { isLoopbackHost } from '../api/loopback.js';
import {
  parseTrustedIssuers,
  type TrustedIssuer,
  TrustedIssuerError,
} from './federation/config.js';
import { parseRateLimits, type RateLimits, RateLimitsError } from './limits/settings.js';
import { NotifySettingError } from './notify/settings.js';
import type { StepUpRule } from './policy/types.js';
import {
  parseResourceServers,
  type ResourceServer,
  ResourceServerError,
} from './revocation/resource-servers.js';
import { DatabaseUrlError, parseDatabaseUrl } from './store/database.js';

/**
 * The readers of the broker's settings (config.ts): each takes a raw value from a flag, a
 * `JITCTL_SERVER_*` variable or the config file and returns it typed, or throws a ConfigError
 * that names where the value came from and how to fix it.
 */

export interface ListenAddress {
  host: string;
  port: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Where a value came from, for messages: `--listen`, `JITCTL_SERVER_LISTEN`, `jitctl.yaml: listen`. */
export interface Source {
  where: string;
  /** Relative paths resolve against this directory. */
  baseDir: string;
}

export type Parser<T> = (value: unknown, src: Source) => T;

export const fail = (src: Source, message: string, hint?: string): never => {
  throw new ConfigError(`${src.where}: ${message}`, hint);
};

export const str =
  (what = 'a string'): Parser<string> =>
  (v, src) => {
    if (typeof v !== 'string' || v.trim() === '') return fail(src, `must be ${what}`);
    return v.trim();
  };

/** A list from an array (file) or from a comma- or space-separated string (flag, env). */
export const list: Parser<string[]> = (v, src) => {
  const items =
    typeof v === 'string'
      ? v.split(/[\s,]+/).filter(Boolean)
      : Array.isArray(v)
        ? v
        : fail(src, 'must be a list (YAML list, or comma-separated in a variable)');
  return items.map((item) => {
    if (typeof item !== 'string' || item.trim() === '' || /[\s,]/.test(item.trim()))
      return fail(src, `list items must be non-empty names, not ${JSON.stringify(item)}`);
    return item.trim();
  });
};

export const bool: Parser<boolean> = (v, src) => {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|1|yes|on)$/i.test(v)) return true;
  if (typeof v === 'string' && /^(false|0|no|off)$/i.test(v)) return false;
  return fail(src, 'must be true or false');
};

export const listen: Parser<ListenAddress> = (v, src) => {
  const text = typeof v === 'number' ? `127.0.0.1:${v}` : str()(v, src);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!m)
    return fail(
      src,
      `${JSON.stringify(text)} is not HOST:PORT`,
      'e.g. 127.0.0.1:8787, 0.0.0.0:8787 or [::]:8787',
    );
  const port = Number(m[3]);
  if (port > 65535) return fail(src, `port ${port} is over 65535`);
  return { host: m[1] ?? m[2]!, port };
};

/** An http(s) URL without query or fragment; plain http only on loopback unless `allowHttp`. */
export const url =
  (opts: { allowHttp?: boolean; keepTrailingSlash?: boolean } = {}): Parser<string> =>
  (v, src) => {
    const text = str('a URL')(v, src);
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      return fail(src, `${JSON.stringify(text)} is not a URL`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      return fail(src, `${text} must be an https:// URL`);
    if (u.protocol === 'http:' && !opts.allowHttp && !isLoopbackHost(u.hostname))
      return fail(src, `${text} must use https (plain http is only for loopback addresses)`);
    if (u.search || u.hash || u.username || u.password)
      return fail(src, `${text} must not have a query, fragment or credentials`);
    // Issuers compare as exact strings (OpenID Connect Core §3.1.3.7), so keep what was written.
    return opts.keepTrailingSlash ? text : text.replace(/\/+$/, '');
  };

export const path: Parser<string> = (v, src) => {
  const p = str('a file path')(v, src);
  return isAbsolute(p) ? p : resolve(src.baseDir, p);
};

export const db: Parser<string> = (v, src) => {
  const text = str('a database URL')(v, src);
  try {
    const target = parseDatabaseUrl(text, src.baseDir);
    return target.dialect === 'sqlite' ? `sqlite:${target.location}` : target.location;
  } catch (err) {
    if (err instanceof DatabaseUrlError) return fail(src, err.message);
    throw err;
  }
};

export const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (v, src) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    return fail(src, `must be one of ${values.join(', ')}, not ${JSON.stringify(v)}`);
  };

export const stepUp: Parser<StepUpRule | null> = (v, src) => {
  let value = v;
  if (value === null || value === false || value === 'none' || value === 'off') return null;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return fail(src, 'must be {"acr": "...", "max_age": "5m"} (JSON in a variable) or none');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return fail(src, 'must be an object with acr and max_age, or none');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'acr' && k !== 'max_age')
      fail(src, `unknown key ${JSON.stringify(k)} (acr, max_age)`);
  const acr = str('an acr value')(o.acr, { ...src, where: `${src.where}.acr` });
  let maxAgeMs: number;
  try {
    maxAgeMs = parseDuration(o.max_age);
  } catch (err) {
    if (err instanceof DurationError)
      return fail({ ...src, where: `${src.where}.max_age` }, err.message);
    throw err;
  }
  return { acr, maxAgeMs };
};

export const trustProxy: Parser<boolean | number | string[]> = (v, src) => {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    if (/^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
    if (/^\d+$/.test(v)) return Number(v);
  }
  const items = list(v, src);
  for (const i of items)
    if (
      !/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(i) &&
      !['loopback', 'linklocal', 'uniquelocal'].includes(i)
    )
      fail(src, `${JSON.stringify(i)} is not an IP address or CIDR range`);
  return items;
};

export const trustedIssuers: Parser<TrustedIssuer[]> = (v, src) => {
  try {
    return parseTrustedIssuers(v, src.where);
  } catch (err) {
    if (err instanceof TrustedIssuerError)
      return fail({ ...src, where: err.where }, err.message, err.hint);
    throw err;
  }
};

/** A duration between `min` and `max` (the review pages' session lifetime). */
export const durationBetween =
  (minMs: number, maxMs: number): Parser<number> =>
  (v, src) => {
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch (err) {
      if (err instanceof DurationError) return fail(src, err.message);
      throw err;
    }
    if (ms < minMs || ms > maxMs)
      return fail(
        src,
        `must be between ${formatDuration(minMs)} and ${formatDuration(maxMs)}, not ${formatDuration(ms)}`,
      );
    return ms;
  };

/** The review pages' redirect URI: where the identity provider sends the browser back. */
export const uiRedirectUri: Parser<string> = (v, src) => {
  const text = url({ keepTrailingSlash: true })(v, src);
  if (!new URL(text).pathname.endsWith(UI_CALLBACK_PATH))
    return fail(
      src,
      `${text} must end with ${UI_CALLBACK_PATH} (where the broker receives the sign-in)`,
      `e.g. https://jit.example.com${UI_CALLBACK_PATH}`,
    );
  return text;
};

/** Where the identity provider sends a browser back to the review pages. */
export const UI_CALLBACK_PATH = '/ui/auth/callback';

export const rateLimits: Parser<RateLimits> = (v, src) => {
  try {
    return parseRateLimits(v, src.where);
  } catch (err) {
    if (err instanceof RateLimitsError)
      return fail({ ...src, where: err.where }, err.message, err.hint);
    throw err;
  }
};

/** The notification settings' own parsers report the nested key that is wrong. */
export const resourceServers: Parser<ResourceServer[]> = (v, src) => {
  try {
    return parseResourceServers(v, src.where);
  } catch (err) {
    if (err instanceof ResourceServerError)
      return fail({ ...src, where: err.where }, err.message, err.hint);
    throw err;
  }
};

export const notifySetting =
  <T>(parse: (v: unknown, where: string, baseDir: string) => T): Parser<T> =>
  (v, src) => {
    try {
      return parse(v, src.where, src.baseDir);
    } catch (err) {
      if (err instanceof NotifySettingError)
        return fail({ ...src, where: err.where }, err.message, err.hint);
      throw err;
    }
  };
