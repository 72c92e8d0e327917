import { DurationError, formatDuration, parseDuration } from '../../api/duration.js';
import { closest } from '../policy/suggest.js';

/**
 * The broker's abuse limits (`rate_limits` in the config; docs/operations.md "Rate limits"). Each
 * door of the API belongs to one class with its own budget of requests per fixed window:
 *
 * - `reads`: signed-in GETs (long polls included), per caller (issuer + subject);
 * - `writes`: signed-in POST/PUT/DELETE (filing, reviewing, cancelling, minting), per caller;
 * - `token`: `POST /v1/token` (pipelines' token exchange), per client address;
 * - `public`: unauthenticated doors (`/v1/config`, discovery, JWKS), per client address;
 * - `auth_failures`: bad bearer tokens and refused token exchanges, per client address; once
 *   spent, the address gets 429 on every authenticated door until the window ends, even with a
 *   good token;
 * - `grant_checks`: `GET /v1/credential/status` (the CLI asking after its grant, kubectl's exec
 *   plugin on every kubectl command), per grant;
 * - `resource_servers`: introspection and the revocation list, per resource server.
 *
 * Defaults are far above what a person or a CI fleet behind one NAT does, and far below what a
 * script in a loop does. `/healthz`, `/readyz` and `/metrics` are never limited.
 */

export const LIMIT_CLASSES = [
  'reads',
  'writes',
  'token',
  'public',
  'auth_failures',
  'grant_checks',
  'resource_servers',
] as const;
export type LimitClass = (typeof LIMIT_CLASSES)[number];

export interface Limit {
  max: number;
  windowMs: number;
}

/** `null`: that class is not limited. */
export type RateLimits = Record<LimitClass, Limit | null>;

const MINUTE = 60_000;

export const DEFAULT_RATE_LIMITS: Readonly<RateLimits> = Object.freeze({
  reads: { max: 600, windowMs: MINUTE },
  writes: { max: 60, windowMs: MINUTE },
  token: { max: 300, windowMs: MINUTE },
  public: { max: 600, windowMs: MINUTE },
  auth_failures: { max: 100, windowMs: 5 * MINUTE },
  // A script running kubectl in a loop checks its grant on every call; a resource server may
  // introspect on every request it serves (caching answers for a few seconds is wiser).
  grant_checks: { max: 1200, windowMs: MINUTE },
  resource_servers: { max: 6000, windowMs: MINUTE },
});

/** Windows shorter than a second or longer than a day are surely a mistake. */
const MIN_WINDOW_MS = 1_000;
const MAX_WINDOW_MS = 86_400_000;
const MAX_MAX = 1_000_000;

export class RateLimitsError extends Error {
  override name = 'RateLimitsError';
  constructor(
    readonly where: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

const HINT = 'e.g. rate_limits: {writes: 60/1m, auth_failures: 100/5m}, a class set to off, or off';

export function formatLimit(limit: Limit | null): string {
  return limit ? `${limit.max}/${formatDuration(limit.windowMs)}` : 'off';
}

const isOff = (v: unknown) =>
  v === false || v === null || (typeof v === 'string' && /^(off|none|false)$/i.test(v.trim()));

/** `60/1m`, `{max: 60, window: 1m}` or `off`. */
function parseLimit(v: unknown, where: string): Limit | null {
  if (isOff(v)) return null;
  let maxRaw: unknown;
  let windowRaw: unknown;
  if (typeof v === 'string') {
    const m = /^\s*(\d+)\s*(?:\/|per)\s*(\S+)\s*$/i.exec(v);
    if (!m)
      throw new RateLimitsError(
        where,
        `${JSON.stringify(v.slice(0, 40))} is not a limit: write COUNT/WINDOW, e.g. 60/1m, or off`,
      );
    maxRaw = Number(m[1]);
    windowRaw = m[2];
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (k !== 'max' && k !== 'window')
        throw new RateLimitsError(where, `unknown key ${JSON.stringify(k)} (max, window)`);
    maxRaw = o.max;
    windowRaw = o.window;
  } else {
    throw new RateLimitsError(where, 'must be COUNT/WINDOW (e.g. 60/1m), {max, window} or off');
  }
  if (typeof maxRaw !== 'number' || !Number.isInteger(maxRaw) || maxRaw < 1 || maxRaw > MAX_MAX)
    throw new RateLimitsError(
      where,
      `the count must be a whole number from 1 to ${MAX_MAX}, not ${JSON.stringify(maxRaw)}`,
      'to switch the limit off, set it to off',
    );
  let windowMs: number;
  try {
    windowMs = parseDuration(windowRaw);
  } catch (err) {
    if (err instanceof DurationError) throw new RateLimitsError(where, `the window ${err.message}`);
    throw err;
  }
  if (windowMs < MIN_WINDOW_MS || windowMs > MAX_WINDOW_MS)
    throw new RateLimitsError(where, `the window ${formatDuration(windowMs)} is outside 1s…1d`);
  return { max: maxRaw, windowMs };
}

/**
 * The `rate_limits` setting: a mapping of class → limit (classes left out keep their default),
 * `off` for no limits at all, or JSON of either in `JITCTL_SERVER_RATE_LIMITS`.
 */
export function parseRateLimits(value: unknown, where: string): RateLimits {
  let v = value;
  if (isOff(v))
    return {
      reads: null,
      writes: null,
      token: null,
      public: null,
      auth_failures: null,
      grant_checks: null,
      resource_servers: null,
    };
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      throw new RateLimitsError(
        where,
        'must be a mapping of limits (JSON in a variable), or off',
        HINT,
      );
    }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new RateLimitsError(where, 'must be a mapping of limits, or off', HINT);
  const limits: RateLimits = { ...DEFAULT_RATE_LIMITS };
  for (const [key, raw] of Object.entries(v as Record<string, unknown>)) {
    if (!(LIMIT_CLASSES as readonly string[]).includes(key)) {
      const meant = closest(key, LIMIT_CLASSES);
      throw new RateLimitsError(
        where,
        `unknown limit ${JSON.stringify(key)}`,
        meant ? `did you mean \`${meant}\`?` : `limits: ${LIMIT_CLASSES.join(', ')}`,
      );
    }
    limits[key as LimitClass] = parseLimit(raw, `${where}.${key}`);
  }
  return limits;
}
