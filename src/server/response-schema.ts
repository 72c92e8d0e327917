/**
 * Response schemas as fast-json-stringify serializes them cheaply. fastify compiles each route's
 * response schema into a serializer; for an `anyOf` that serializer asks ajv, on every response,
 * which branch the value matches, and the API's schemas are full of two kinds of them: a value or
 * null (`Nullable(x)`) and a set of strings (`Type.Union` of literals, e.g. a request's state).
 * Each is rewritten to the one type it serializes as: `{ ...x, nullable: true }` and
 * `{ type: 'string' }`. The bytes written are the same for every value the schema allows (a
 * string is a string, null is null); what changes is that fast-json-stringify no longer runs a
 * validator per field per response (~0.1 ms of the broker's CPU per lifecycle call). Request
 * bodies are validated by ajv with the schemas as written; only the copies given to the
 * serializer are rewritten, never the shared schema objects.
 */

type Schema = Record<string, unknown>;

const isSchema = (v: unknown): v is Schema =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Only these keywords serialize; anything else (a `$ref`, `allOf`, `oneOf`…) is left alone. */
const SINGLE_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array']);

/** A copy of `schema` with the anyOfs above rewritten, recursively. */
export function forSerializer(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forSerializer);
  if (!isSchema(schema)) return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] =
      k === 'properties' && isSchema(v)
        ? Object.fromEntries(Object.entries(v).map(([p, s]) => [p, forSerializer(s)]))
        : k === 'items' || k === 'additionalProperties' || k === 'anyOf'
          ? forSerializer(v)
          : v;
  }
  const branches = out.anyOf;
  if (!Array.isArray(branches) || branches.length < 2 || !branches.every(isSchema)) return out;
  const { anyOf: _, ...rest } = out;
  // A set of string literals: a string.
  if (branches.every((b) => b.type === 'string' && typeof b.const === 'string'))
    return { ...rest, type: 'string' };
  // A value or null.
  if (branches.length === 2) {
    const value = branches.find((b) => b.type !== 'null');
    const hasNull = branches.some((b) => b.type === 'null' && Object.keys(b).length === 1);
    const plain =
      value !== undefined &&
      typeof value.type === 'string' &&
      SINGLE_TYPES.has(value.type) &&
      value.nullable === undefined &&
      ['anyOf', 'oneOf', 'allOf', '$ref', 'const', 'if'].every((k) => !(k in value));
    if (hasNull && plain) return { ...rest, ...value, nullable: true };
  }
  return out;
}

/** A route's `response` map (status → schema), rewritten for the serializer. */
export function responsesForSerializer(response: unknown): unknown {
  if (!isSchema(response)) return response;
  return Object.fromEntries(Object.entries(response).map(([code, s]) => [code, forSerializer(s)]));
}
