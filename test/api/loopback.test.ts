import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/api/loopback.js';

describe('isLoopbackHost (one rule for the CLI and the broker)', () => {
  it.each(['localhost', '[::1]', '127.0.0.1', '127.1.2.3'])('%s is this machine', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  it.each([
    '127.evil.example',
    '127.0.0.1.evil.example',
    'localhost.evil.example',
    '128.0.0.1',
    '::1',
    'example.com',
    '',
  ])('%s is not', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
  it('takes URL hostnames as URL parses them', () => {
    expect(isLoopbackHost(new URL('http://[::1]:8080/').hostname)).toBe(true);
    expect(isLoopbackHost(new URL('http://127.evil.example/').hostname)).toBe(false);
  });
});
