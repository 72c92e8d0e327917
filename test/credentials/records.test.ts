import { describe, expect, it } from 'vitest';
import { credentialKey, serverOfKey, sessionKey } from '../../src/credentials/records.js';

describe('serverOfKey', () => {
  it('finds the broker of session and credential keys (what logout --all signs out of)', () => {
    const server = 'https://jit.example.com';
    expect(serverOfKey(sessionKey(server))).toBe(server);
    expect(serverOfKey(credentialKey(server, 'prod-deploy'))).toBe(server);
    // A role may itself contain the separator: the first `|credential|` ends the server.
    expect(serverOfKey(credentialKey(server, 'a|credential|b'))).toBe(server);
  });

  it('refuses other keys and keys without a server', () => {
    for (const key of [
      '',
      'passphrase-check',
      'https://jit.example.com',
      '|session',
      '|credential|x',
    ])
      expect(serverOfKey(key), key).toBeUndefined();
  });
});
