/**
 * One JSON document on one line (JSON Lines, NDJSON): `jitctl audit tail --format jsonl|ocsf` and
 * the broker's file sinks. JSON.stringify already escapes line breaks and C0 controls; the
 * characters it leaves raw that a terminal or an editor would act on (DEL, C1 controls, bidi
 * overrides, line and paragraph separators, zero-width characters) are escaped as \uXXXX too, so
 * the line means the same and is safe to `cat`.
 */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

export function jsonLine(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
