import { describe, expect, it } from 'vitest';
import { safe } from '../../src/cli/output.js';

describe('safe', () => {
  it('makes terminal escapes, control and bidi characters visible', () => {
    expect(safe('hotfix \u001b[2J\u001b]0;pwned\u0007')).toBe('hotfix \\x1b[2J\\x1b]0;pwned\\x07');
    expect(safe('a\u202eb\u2066c')).toBe('a\\u202eb\\u2066c');
    expect(safe('line1\nline2\ttab\r')).toBe('line1\\nline2\\ttab\\r');
    expect(safe('\u009b31m')).toBe('\\x9b31m');
    expect(safe('zero\u200bwidth')).toBe('zero\\u200bwidth');
  });

  it('keeps ordinary text, including non-Latin scripts and emoji', () => {
    expect(safe('Déploiement 生产 🚀 — ok')).toBe('Déploiement 生产 🚀 — ok');
    expect(safe(null)).toBe('');
  });
});
