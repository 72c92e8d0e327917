/**
 * Durations on the wire and on the command line: `15m`, `1h30m`, `90s`, `2d`. One parser for the
 * CLI and the broker, so a duration the CLI accepts is one the broker accepts (a property test
 * holds them together). Units in descending order, each at most once, whole numbers only; the
 * value is milliseconds.
 */

const UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
] as const;

const PATTERN = /^(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$/;

export const DURATION_HINT = 'durations look like 15m, 1h30m, 90s or 2d';

export class DurationError extends Error {
  override name = 'DurationError';
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(`${JSON.stringify(input)} ${reason}`);
  }
}

/** Parses a duration to milliseconds; throws {@link DurationError} (never anything else). */
export function parseDuration(input: unknown): number {
  if (typeof input !== 'string') {
    throw new DurationError(String(input), `is not a duration: ${DURATION_HINT}`);
  }
  if (input.length === 0) throw new DurationError(input, `is empty: ${DURATION_HINT}`);
  if (input.length > 32)
    throw new DurationError(input.slice(0, 32), 'is too long to be a duration');
  if (input.startsWith('-'))
    throw new DurationError(input, 'is negative: durations must be positive');
  const m = PATTERN.exec(input);
  if (!m || m[0] === '') throw new DurationError(input, `is not a duration: ${DURATION_HINT}`);
  let ms = 0;
  for (let i = 0; i < UNITS.length; i++) {
    const part = m[i + 1];
    if (part !== undefined) ms += Number(part) * UNITS[i]![1];
  }
  if (ms === 0) throw new DurationError(input, 'is zero: durations must be longer than 0s');
  return ms;
}

/** Like {@link parseDuration} but returns undefined instead of throwing. */
export function tryParseDuration(input: unknown): number | undefined {
  try {
    return parseDuration(input);
  } catch {
    return undefined;
  }
}

/** Formats milliseconds as the canonical duration string (whole seconds, rounded down). */
export function formatDuration(ms: number): string {
  let rest = Math.max(0, Math.floor(ms / 1000)) * 1000;
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
