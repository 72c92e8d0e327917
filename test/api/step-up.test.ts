import { describe, expect, it } from 'vitest';
import {
  formatStepUpChallenge,
  parseBearerChallenge,
  parseStepUpChallenge,
} from '../../src/api/step-up.js';

describe('RFC 9470 challenge', () => {
  it('formats the header the RFC shows and parses it back', () => {
    const header = formatStepUpChallenge({
      acrValues: 'mfa',
      maxAge: 300,
      description: 'a "fresh" MFA is needed',
    });
    expect(header).toBe(
      'Bearer error="insufficient_user_authentication", error_description="a \\"fresh\\" MFA is needed", acr_values="mfa", max_age=300',
    );
    expect(parseStepUpChallenge(header)).toEqual({
      acrValues: 'mfa',
      maxAge: 300,
      description: 'a "fresh" MFA is needed',
    });
  });

  it('parses the RFC 9470 §3 examples', () => {
    expect(
      parseStepUpChallenge(
        'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR"',
      ),
    ).toEqual({
      acrValues: 'myACR',
      description: 'A different authentication level is required',
    });
    expect(
      parseStepUpChallenge(
        'Bearer error="insufficient_user_authentication",error_description="More recent authentication is required",max_age="5"',
      ),
    ).toMatchObject({ maxAge: 5 });
  });

  it('is not fooled by other challenges or garbage', () => {
    expect(parseStepUpChallenge('Bearer error="invalid_token"')).toBeUndefined();
    expect(parseStepUpChallenge('Basic realm="x"')).toBeUndefined();
    expect(parseStepUpChallenge('')).toBeUndefined();
    expect(parseStepUpChallenge(undefined)).toBeUndefined();
    expect(parseBearerChallenge('Bearer ,,,===')).toEqual({});
    expect(
      parseStepUpChallenge('Bearer error="insufficient_user_authentication", max_age=abc'),
    ).toEqual({});
  });
});
