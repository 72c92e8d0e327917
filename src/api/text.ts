/**
 * Text for people, shared by the CLI and the broker's pages: other people's text made safe to
 * look at, and coarse relative times. One implementation, so that `jitctl show` and the review
 * page say the same thing about the same request.
 */

// C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates, line/paragraph separators,
// zero-width and BOM characters.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/**
 * Control characters, escape sequences and bidirectional overrides shown as visible escapes
 * (`\x1b`, `\u202e`), never interpreted: by a terminal, or by a browser reordering a reason so
 * that it reads differently from what was filed.
 */
export function safe(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** "3m ago", "in 14m": coarse relative times for humans. */
export function relative(fromMs: number, nowMs: number): string {
  const diff = fromMs - nowMs;
  const abs = Math.abs(diff);
  // Each branch ends where its rounding would reach the next unit: 59.6 s is "1m", not "60s";
  // 59m40s is "1h", not "60m".
  const unit =
    abs < 59_500
      ? `${Math.round(abs / 1000)}s`
      : abs < 3_570_000
        ? `${Math.round(abs / 60_000)}m`
        : abs < 86_400_000
          ? hoursMinutes(abs)
          : `${Math.round(abs / 86_400_000)}d`;
  return diff >= 0 ? `in ${unit}` : `${unit} ago`;
}

/** 2h, 2h59m: minutes rounded first, so 2h59m40s reads 3h rather than 2h60m. */
function hoursMinutes(ms: number): string {
  const total = Math.round(ms / 60_000);
  const m = total % 60;
  return m ? `${Math.floor(total / 60)}h${m}m` : `${Math.floor(total / 60)}h`;
}
