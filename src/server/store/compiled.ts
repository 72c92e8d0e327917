import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Queries of the write path built and compiled once per dialect, then run with each call's
 * values. kysely builds an operation tree and compiles it to SQL on every call, which costs about
 * as much as SQLite running the small statements of the write path (docs/performance.md,
 * section 3); these run several times in every lifecycle.
 *
 * The builder is run once with placeholder values. Its compiled statement is kept only if its
 * parameters are exactly those placeholders, in order (a builder that only passes its values
 * into the query); each call then runs the same SQL with its own values in their places.
 * Otherwise the query is built and compiled on every call, as kysely does. The statement is
 * kept per dialect adapter (SQLite and PostgreSQL compile differently), and per number of values
 * (a multi-row insert has one statement per row count).
 */
type Q = Kysely<Database>;

export function reusable<R>(
  build: (q: Q, ...values: unknown[]) => Compilable<R>,
): (q: Q, ...values: unknown[]) => Promise<R[]> {
  const kept = new Map<unknown, Map<number, CompiledQuery<R> | null>>();
  return async (q, ...values) => {
    const adapter = q.getExecutor().adapter.constructor;
    let byCount = kept.get(adapter);
    if (!byCount) {
      byCount = new Map();
      kept.set(adapter, byCount);
    }
    let compiled = byCount.get(values.length);
    if (compiled === undefined) {
      const marks = values.map((_, i) => `\u0000jitctl-value-${i}\u0000`);
      const c = build(q, ...marks).compile();
      const exact =
        c.parameters.length === marks.length && c.parameters.every((p, i) => p === marks[i]);
      compiled = exact ? c : null;
      byCount.set(values.length, compiled);
    }
    const query = compiled ? { ...compiled, parameters: values } : build(q, ...values);
    return (await q.executeQuery(query)).rows;
  };
}

/**
 * An insert of whole rows into `table`, compiled once per row count: `columns` names every
 * column (check it with {@link AllColumns}), and each call passes the rows.
 */
export function reusableInsert<Row>(
  table: keyof Database & string,
  columns: readonly (keyof Row & string)[],
): (q: Q, rows: readonly Row[]) => Promise<unknown[]> {
  const run = reusable((q, ...values) => {
    const rows: Record<string, unknown>[] = [];
    for (let i = 0; i < values.length; i += columns.length)
      rows.push(Object.fromEntries(columns.map((c, j) => [c, values[i + j]])));
    return q.insertInto(table).values(rows as never);
  });
  return (q, rows) => run(q, ...rows.flatMap((r) => columns.map((c) => r[c])));
}

/**
 * `true` when `C` names every column of `Row`: a column list for an insert compiled once
 * (`true satisfies AllColumns<Row, typeof COLUMNS>` fails to compile when the table gains one).
 */
export type AllColumns<Row, C extends readonly (keyof Row)[]> = [
  Exclude<keyof Row, C[number]>,
] extends [never]
  ? true
  : false;
