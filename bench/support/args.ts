/**
 * Flags shared by every benchmark: `--json` (the figures as one JSON document on stdout, the
 * table on stderr is skipped) and whole-number options with a default. A bad value stops the
 * benchmark with a message naming the flag rather than running with a silently different size.
 */

export function hasFlag(name: string, argv: readonly string[] = process.argv): boolean {
  return argv.includes(`--${name}`);
}

export function intFlag(
  name: string,
  fallback: number,
  argv: readonly string[] = process.argv,
): number {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const raw = argv[i + 1];
  const n = Number(raw);
  if (raw === undefined || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) {
    throw new Error(`--${name} needs a positive whole number (got ${JSON.stringify(raw)})`);
  }
  return n;
}

export function listFlag(
  name: string,
  fallback: readonly number[],
  argv: readonly string[] = process.argv,
): number[] {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return [...fallback];
  const raw = argv[i + 1] ?? '';
  const values = raw.split(',').map(Number);
  if (values.length === 0 || values.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
    throw new Error(`--${name} takes positive whole numbers separated by commas, e.g. 1,8,32`);
  }
  return values;
}

export function stringFlag<T extends string>(
  name: string,
  allowed: readonly T[],
  fallback: T,
  argv: readonly string[] = process.argv,
): T {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const raw = argv[i + 1];
  if (!allowed.includes(raw as T)) {
    throw new Error(`--${name} takes ${allowed.join(', ')} (got ${JSON.stringify(raw)})`);
  }
  return raw as T;
}

/** A flag with a value and no default (`--bin PATH`, `--profile DIR`): undefined when absent. */
export function valueFlag(
  name: string,
  argv: readonly string[] = process.argv,
): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const raw = argv[i + 1];
  if (raw === undefined || raw.startsWith('--')) throw new Error(`--${name} needs a value`);
  return raw;
}
