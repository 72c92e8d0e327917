import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  type Policy,
  PolicyError,
  parsePolicy,
  ROLE_KEYS,
} from '../../../src/server/policy/index.js';
import { role } from './helpers.js';

/** The parser's contract: a Policy or a PolicyError with located issues, never anything else. */
function check(text: string): Policy | PolicyError {
  let result: Policy | PolicyError;
  try {
    result = parsePolicy(text, 'fuzz.yaml');
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    expect(err.issues.length).toBeGreaterThan(0);
    for (const issue of err.issues) {
      expect(issue.file).toBe('fuzz.yaml');
      expect(typeof issue.message).toBe('string');
      expect(issue.message.length).toBeGreaterThan(0);
      if (issue.line !== null) expect(issue.line).toBeGreaterThanOrEqual(1);
    }
    result = err;
  }
  if (!(result instanceof PolicyError)) {
    for (const r of result.roles.values()) {
      expect(r.requesters.length).toBeGreaterThan(0);
      expect(r.approvers.length).toBeGreaterThan(0);
      expect(r.defaultDurationMs).toBeLessThanOrEqual(r.maxDurationMs);
      expect(r.maxDurationMs).toBeGreaterThan(0);
      expect(r.denials).toBeGreaterThanOrEqual(1);
      expect(Number.isInteger(r.approvals) && r.approvals >= 0).toBe(true);
    }
  }
  return result;
}

const scalar = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('15m', '1h', '0m', '-5m', '8d', 'group:leads', 'user:a@b.c', '{{token}}', 'mfa'),
  fc.integer({ min: -3, max: 200 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 3 }),
  ),
})).v;
const roleBody = fc.dictionary(
  fc.oneof(fc.constantFrom(...ROLE_KEYS), fc.string({ maxLength: 10 })),
  fc.oneof(
    value,
    fc.array(fc.constantFrom('group:a', 'user:b', 'c', 'group:*'), { maxLength: 3 }),
    fc.record({ audience: scalar, env: fc.dictionary(fc.string({ maxLength: 8 }), scalar) }),
    fc.record({ acr: scalar, max_age: scalar }),
  ),
);
const policyShaped = fc.record(
  {
    roles: fc.dictionary(fc.string({ maxLength: 12 }), roleBody, { maxKeys: 3 }),
    notify: fc.array(fc.record({ webhook: scalar }), { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

describe('parsePolicy never throws anything but PolicyError', () => {
  it('on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => void check(text)),
      {
        numRuns: 500,
      },
    );
  });

  it('on YAML-ish text built from YAML punctuation', () => {
    const token = fc.constantFrom(
      'roles:',
      '\n',
      '  ',
      '- ',
      '[',
      ']',
      '{',
      '}',
      ':',
      ',',
      '&a ',
      '*a',
      '<<: ',
      '!!str ',
      '!x ',
      '"',
      "'",
      '#',
      '---\n',
      '? ',
      '|',
      '>',
      'deploy',
      'group:a',
      '15m',
      '%YAML 1.1\n',
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 60 }), (parts) => void check(parts.join(''))),
      { numRuns: 500 },
    );
  });

  it('on arbitrary values serialized as YAML', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => void check(stringify(v))),
      { numRuns: 300 },
    );
  });

  it('on policy-shaped documents with arbitrary values', () => {
    fc.assert(
      fc.property(policyShaped, (v) => void check(stringify(v))),
      { numRuns: 500 },
    );
  });

  it('on a valid policy with random edits', () => {
    const base = role({ step_up: '{ acr: mfa, max_age: 5m }', approvals: '1' });
    const edit = fc.record({
      at: fc.nat({ max: base.length }),
      remove: fc.nat({ max: 4 }),
      insert: fc.string({ maxLength: 4 }),
    });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
        let text = base;
        for (const e of edits) {
          const at = Math.min(e.at, text.length);
          text = text.slice(0, at) + e.insert + text.slice(at + e.remove);
        }
        check(text);
      }),
      { numRuns: 500 },
    );
  });
});
