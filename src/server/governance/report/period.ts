import { DurationError, formatDuration, parseDuration } from '../../../api/duration.js';
import { badRequest } from '../../errors.js';

/**
 * The report's parameters as people write them: `since` a duration back from now (`30d`) or a
 * date (`2025-06-01`, or RFC 3339); the frequent-requester threshold as `COUNT/WINDOW` (`3/24h`).
 */

/** Reports reach back at most this far (about ten years): a bound, not a policy. */
export const MAX_SPAN_MS = 3660 * 86_400_000;
export const DEFAULT_SINCE = '30d';

/** Entra PIM's "roles are being activated too frequently", as a default: 3 within 24 hours. */
export const DEFAULT_FREQUENT = { count: 3, withinMs: 24 * 3_600_000 };

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$/;

export interface Since {
  from: number;
  /** As asked, for the report's heading (`30d`, `2025-06-01`). */
  label: string;
}

export function parseSince(text: string | undefined, now: number): Since {
  const value = (text ?? DEFAULT_SINCE).trim();
  let from: number;
  if (DATE.test(value) || RFC3339.test(value)) {
    from = Date.parse(DATE.test(value) ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(from)) throw badRequest(`\`since\` ${JSON.stringify(value)} is not a date`);
    if (from >= now) throw badRequest(`\`since\` ${value} is not in the past`);
  } else {
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      throw badRequest(
        `\`since\` ${err.message}`,
        'give a duration back from now (30d, 12h) or a date (2025-06-01)',
      );
    }
    from = now - ms;
  }
  if (now - from > MAX_SPAN_MS)
    throw badRequest(
      `\`since\` ${value} reaches back more than ${formatDuration(MAX_SPAN_MS)}`,
      'report on a shorter period',
    );
  return { from, label: value };
}

export function parseFrequent(text: string | undefined): { count: number; withinMs: number } {
  if (text === undefined) return DEFAULT_FREQUENT;
  const m = /^(\d{1,3})\/(.{1,32})$/.exec(text.trim());
  const hint = 'write COUNT/WINDOW, e.g. 3/24h: that many requests for one role within the window';
  if (!m)
    throw badRequest(`\`frequent\` ${JSON.stringify(text.slice(0, 40))} is not a threshold`, hint);
  const count = Number(m[1]);
  let withinMs: number;
  try {
    withinMs = parseDuration(m[2]);
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    throw badRequest(`\`frequent\` window ${err.message}`, hint);
  }
  if (count < 2 || count > 100) throw badRequest('`frequent` count must be from 2 to 100', hint);
  if (withinMs > 31 * 86_400_000) throw badRequest('`frequent` window must be at most 31d', hint);
  return { count, withinMs };
}
