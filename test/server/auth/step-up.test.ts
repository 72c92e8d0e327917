import { describe, expect, it } from 'vitest';
import { acceptableAcrValues, strongestStepUp } from '../../../src/server/auth/step-up.js';

/** What `GET /v1/config` tells `jitctl login` to ask for: the strongest step-up of the policy. */
describe('strongestStepUp', () => {
  const levels = ['pwd', 'mfa', 'phr'];
  const rule = (acr: string) => ({ acr, maxAgeMs: 300_000 });

  it('picks the highest-ranked acr, whatever the order of the roles', () => {
    expect(strongestStepUp([rule('mfa'), rule('phr'), rule('pwd')], levels)?.acr).toBe('phr');
    expect(strongestStepUp([rule('pwd'), rule('mfa')], levels)?.acr).toBe('mfa');
  });

  it('is null without rules, and prefers a ranked acr over one outside the ranking', () => {
    expect(strongestStepUp([], levels)).toBeNull();
    expect(strongestStepUp([rule('custom'), rule('mfa')], levels)?.acr).toBe('mfa');
    expect(strongestStepUp([rule('custom')], levels)?.acr).toBe('custom');
  });

  it('its acceptable values are that level and every stronger one', () => {
    expect(acceptableAcrValues(rule('mfa'), levels)).toBe('mfa phr');
    expect(acceptableAcrValues(rule('custom'), levels)).toBe('custom');
  });
});
