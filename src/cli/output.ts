import { styleText } from 'node:util';
import type { IO } from './io.js';

export { relative, safe } from '../api/text.js';

/**
 * Printing helpers. Text that came from other people (reasons, comments, names, roles) goes
 * through `safe` (src/api/text.ts, shared with the broker's pages): control characters, terminal
 * escape sequences and bidirectional overrides are shown as visible escapes, never interpreted.
 */

// What JSON.stringify leaves raw but a terminal would act on: DEL, C1 controls, bidi overrides,
// line separators, zero-width characters. Outside strings JSON has none of them, so escaping each
// as \uXXXX keeps the document's value and makes `jitctl … --json | cat` safe to look at.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Writes a value as JSON on stdout (the `--json` contract: one document, newline-terminated). */
export function printJson(io: IO, value: unknown): void {
  const text = (JSON.stringify(value, null, 2) ?? 'null').replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  io.out(`${text}\n`);
}

type Style = 'bold' | 'dim' | 'green' | 'red' | 'yellow' | 'cyan';

/** Styles text for stderr when colour is on (a TTY, no NO_COLOR, not CI). */
export function style(io: IO, format: Style, text: string): string {
  return io.color ? styleText(format, text) : text;
}

/** Styles text for stdout: only when stdout itself is a terminal and colour is allowed. */
export function styleOut(io: IO, format: Style, text: string): string {
  return io.color && io.stdoutIsTTY ? styleText(format, text) : text;
}

/**
 * A plain-text table: headers and rows of already-safe strings, columns padded, the last column
 * cut to the terminal width on a TTY.
 */
export function table(io: IO, headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => {
    const text = cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
    return io.stdoutIsTTY && text.length > io.columns ? `${text.slice(0, io.columns - 1)}…` : text;
  };
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n') + '\n';
}

/** Local wall-clock time (HH:MM) for "valid until 14:32". */
export function clockTime(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
