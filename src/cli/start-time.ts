import { DURATION_HINT, DurationError, formatDuration, parseDuration } from '../api/duration.js';
import { UsageError } from './errors.js';
import { safe } from './output.js';

/**
 * `jitctl request --at TIME | --in DURATION`: when a scheduled request starts. `--at` takes a time
 * of day on this machine's clock today (`14:00`, `14:00:30`) or an RFC 3339 time with its offset
 * (`2025-01-02T14:00:00+01:00`, `…Z`); `--in` a duration from now. The broker checks the same
 * bounds again: not in the past, at most 7 days ahead.
 */

export const MAX_AHEAD_MS = 7 * 24 * 3_600_000;
const CLOCK = /^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$/;

/** The local RFC 3339 form of `ms` (with this machine's offset), for hints people can copy. */
export function localRfc3339(ms: number): string {
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const pad = (n: number) => String(Math.abs(n)).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
    `${sign}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`
  );
}

/** The start asked for with `--at` or `--in` (ms), or undefined for neither. */
export function startFlag(
  at: string | undefined,
  within: string | undefined,
  now: number,
): number | undefined {
  if (at !== undefined && within !== undefined) {
    throw new UsageError('--at and --in both say when to start', { hint: 'give one of them' });
  }
  if (within !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(within);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      throw new UsageError(`\`--in ${safe(within)}\`: ${DURATION_HINT}`, { hint: 'e.g. --in 2h' });
    }
    return bounded(now + ms, `--in ${safe(within)}`, now);
  }
  if (at === undefined) return undefined;
  const text = at.trim();
  const clock = CLOCK.exec(text);
  if (clock) {
    const d = new Date(now);
    d.setHours(Number(clock[1]), Number(clock[2]), Number(clock[3] ?? 0), 0);
    const start = d.getTime();
    if (start < now - 60_000) {
      const tomorrow = new Date(start);
      tomorrow.setDate(tomorrow.getDate() + 1);
      throw new UsageError(
        `\`--at ${safe(text)}\` is in the past: it is ${new Date(now).toTimeString().slice(0, 5)} now`,
        { hint: `for tomorrow, write --at ${localRfc3339(tomorrow.getTime())}` },
      );
    }
    return bounded(start, `--at ${safe(text)}`, now);
  }
  const ms = RFC3339.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`\`--at ${safe(text)}\` is not a time`, {
      hint: `write a time of day (--at 14:00) or an RFC 3339 time (--at ${localRfc3339(now + 3_600_000)})`,
    });
  }
  if (ms < now - 60_000) {
    throw new UsageError(`\`--at ${safe(text)}\` is in the past`, {
      hint: 'leave --at out to start as soon as it is approved',
    });
  }
  return bounded(ms, `--at ${safe(text)}`, now);
}

function bounded(start: number, flag: string, now: number): number {
  if (start - now > MAX_AHEAD_MS) {
    throw new UsageError(`\`${flag}\` is more than ${formatDuration(MAX_AHEAD_MS)} ahead`, {
      hint: 'file it nearer the time',
    });
  }
  return start;
}
