import fastJson from 'fast-json-stringify';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/api/schemas.js';
import { forSerializer, responsesForSerializer } from '../../src/server/response-schema.js';

/**
 * The serializer's copies of the response schemas (src/server/response-schema.ts) must write the
 * same bytes as the schemas as written, for every value those schemas allow. Values are drawn
 * from each schema of src/api/schemas.ts by a seeded generator (every branch of a union, nulls,
 * optional properties present and absent, strings that need escaping).
 */

type Schema = Record<string, unknown>;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const STRINGS = [
  '',
  'pending',
  'a "quoted"\nline',
  'ünïcode ✓',
  '\u2028bidi\u202e',
  'x'.repeat(40),
];

function sample(schema: Schema, r: () => number, depth = 0): unknown {
  if (Array.isArray(schema.anyOf)) {
    const branches = schema.anyOf as Schema[];
    return sample(branches[Math.floor(r() * branches.length)]!, r, depth);
  }
  if (schema.const !== undefined) return schema.const;
  switch (schema.type) {
    case 'null':
      return null;
    case 'string':
      return STRINGS[Math.floor(r() * STRINGS.length)];
    case 'integer':
      return Math.floor(r() * 1e9) - 1e4;
    case 'number':
      return r() * 1e6;
    case 'boolean':
      return r() < 0.5;
    case 'array': {
      if (depth > 4) return [];
      const n = Math.floor(r() * 3);
      return Array.from({ length: n }, () => sample(schema.items as Schema, r, depth + 1));
    }
    case 'object': {
      const out: Record<string, unknown> = {};
      const required = new Set((schema.required as string[] | undefined) ?? []);
      const props = (schema.properties as Record<string, Schema> | undefined) ?? {};
      for (const [k, s] of Object.entries(props)) {
        if (required.has(k) || r() < 0.5) out[k] = sample(s, r, depth + 1);
      }
      return out;
    }
    default:
      return {};
  }
}

const schemas = Object.entries(api).filter(
  ([, v]) =>
    typeof v === 'object' &&
    v !== null &&
    ((v as Schema).type === 'object' || Array.isArray((v as Schema).anyOf)),
) as [string, Schema][];

describe('response schemas for the serializer', () => {
  it('covers the API types whose serialization changes', () => {
    const changed = schemas.filter(
      ([, s]) => JSON.stringify(forSerializer(s)) !== JSON.stringify(s),
    );
    expect(changed.map(([n]) => n)).toEqual(
      expect.arrayContaining(['AccessRequest', 'Review', 'AuditEvent']),
    );
  });

  it.each(schemas)('%s: the same JSON for every value the schema allows', (_name, schema) => {
    const written = fastJson(schema as never);
    const rewritten = fastJson(forSerializer(schema) as never);
    const r = rng(17);
    for (let i = 0; i < 300; i++) {
      const v = sample(schema, r);
      const expected = written(v as never);
      expect(rewritten(v as never)).toBe(expected);
      expect(JSON.parse(expected)).toEqual(JSON.parse(JSON.stringify(v)));
    }
  });

  it('rewrites value-or-null and string unions, and leaves the shared schema as it was', () => {
    const before = JSON.stringify(api.AccessRequest);
    const s = forSerializer(api.AccessRequest) as { properties: Record<string, Schema> };
    expect(s.properties.state).toEqual({ type: 'string' });
    expect(s.properties.reason).toEqual({ type: 'string', nullable: true });
    expect(s.properties.extension).toMatchObject({ type: 'object', nullable: true });
    expect(JSON.stringify(forSerializer(s))).toBe(JSON.stringify(s));
    expect(JSON.stringify(api.AccessRequest)).toBe(before);
  });

  it('leaves unions it cannot make one type', () => {
    const mixed = { anyOf: [{ type: 'string' }, { type: 'integer' }] };
    expect(forSerializer(mixed)).toEqual(mixed);
    const withRef = { anyOf: [{ $ref: 'x' }, { type: 'null' }] };
    expect(forSerializer(withRef)).toEqual(withRef);
    expect(responsesForSerializer({ 200: mixed, 201: { type: 'string' } })).toEqual({
      200: mixed,
      201: { type: 'string' },
    });
  });
});
