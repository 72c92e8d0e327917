import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTemplate } from '../../../src/server/policy/env-template.js';
import { renderEnv } from '../../../src/server/policy/index.js';

const values = {
  token: 'eyJhbGciOiJFZERTQSJ9.payload.sig',
  role: 'prod-deploy',
  request_id: 'req_7Hq2',
  expires_at: '2025-01-01T14:32:00Z',
};

describe('renderEnv', () => {
  it('fills every placeholder, with or without spaces, and keeps literal text', () => {
    expect(
      renderEnv(
        {
          KUBE_TOKEN: '{{token}}',
          AUTH: 'Bearer {{ token }}',
          INFO: '{{role}}/{{request_id}} until {{expires_at}}',
          PLAIN: 'no placeholders {here} }',
          EMPTY: '',
        },
        values,
      ),
    ).toEqual({
      KUBE_TOKEN: values.token,
      AUTH: `Bearer ${values.token}`,
      INFO: 'prod-deploy/req_7Hq2 until 2025-01-01T14:32:00Z',
      PLAIN: 'no placeholders {here} }',
      EMPTY: '',
    });
  });

  it('inserts values literally, even ones that look like replacement patterns or placeholders', () => {
    const env = renderEnv({ A: 'x{{token}}y' }, { ...values, token: "$&$1$'$`{{role}}" });
    expect(env).toEqual({ A: "x$&$1$'$`{{role}}y" });
  });

  it('returns plain own properties, whatever the names', () => {
    const env = renderEnv({ __proto__: 'p', constructor: 'c' } as Record<string, string>, values);
    expect(Object.getPrototypeOf(env)).toBe(Object.prototype);
  });

  it('throws for a template that policy validation would have refused', () => {
    expect(() => renderEnv({ A: '{{nope}}' }, values)).toThrow(
      'env template A is invalid: unknown placeholder `{{nope}}`',
    );
  });

  it('renders to the template with each placeholder replaced (property)', () => {
    const piece = fc.oneof(
      fc
        .string({ unit: fc.constantFrom('a', ' ', '{', '}', '$', 'x') })
        .filter(
          (s) => !s.includes('{{') && !s.includes('}}') && !s.endsWith('{') && !s.startsWith('}'),
        ),
      fc.constantFrom('{{token}}', '{{ role }}', '{{request_id}}', '{{expires_at}}'),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const template = pieces.join('');
        const compiled = compileTemplate(template);
        if ('error' in compiled) return; // two literal pieces can join into `{{` or `}}`
        const expected = template.replace(
          /\{\{\s*(token|role|request_id|expires_at)\s*\}\}/g,
          (_m, name: keyof typeof values) => values[name],
        );
        expect(renderEnv({ V: template }, values).V).toBe(expected);
      }),
    );
  });
});
