import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DurationError, formatDuration, parseDuration } from '../../src/api/duration.js';

describe('parseDuration', () => {
  it.each([
    ['15m', 15 * 60_000],
    ['1h30m', 90 * 60_000],
    ['90s', 90_000],
    ['2d', 2 * 86_400_000],
    ['1d2h3m4s', 86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4000],
    ['1h90m', 150 * 60_000],
    ['99999h', 99999 * 3_600_000],
  ])('%s', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    ['15x', 'is not a duration'],
    ['0m', 'is zero'],
    ['0h0m', 'is zero'],
    ['-5m', 'is negative'],
    ['', 'is empty'],
    ['1.5h', 'is not a duration'],
    ['15', 'is not a duration'],
    ['m', 'is not a duration'],
    ['15M', 'is not a duration'],
    ['30m1h', 'is not a duration'],
    ['1h 30m', 'is not a duration'],
    [' 15m', 'is not a duration'],
    ['15ms', 'is not a duration'],
    ['1234567h', 'is not a duration'],
    ['x'.repeat(100), 'too long'],
  ])('refuses %j', (input, reason) => {
    expect(() => parseDuration(input)).toThrow(DurationError);
    expect(() => parseDuration(input)).toThrow(reason);
  });

  it('refuses values that are not strings', () => {
    for (const v of [15, null, undefined, {}, ['15m']])
      expect(() => parseDuration(v)).toThrow(DurationError);
  });

  it('never throws anything but DurationError, and accepts only positive whole-unit values', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        try {
          const ms = parseDuration(s);
          expect(Number.isSafeInteger(ms)).toBe(true);
          expect(ms).toBeGreaterThan(0);
          expect(ms % 1000).toBe(0);
        } catch (err) {
          expect(err).toBeInstanceOf(DurationError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('round-trips through formatDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 999_999 * 86_400 }), (seconds) => {
        const ms = seconds * 1000;
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [15 * 60_000, '15m'],
    [90 * 60_000, '1h30m'],
    [999, '0s'],
    [0, '0s'],
    [-5, '0s'],
    [86_400_000 + 1000, '1d1s'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
