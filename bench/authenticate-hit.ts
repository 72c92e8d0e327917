/**
 * CPU of `Authenticator.authenticate` for a token already verified (the cache hit every call but
 * a caller's first pays): a real ES256 ID token of ~900 bytes, a verifier that accepts it.
 *
 *   npx tsx bench/authenticate-hit.ts [--calls 200000]
 */
import { parseArgs } from 'node:util';
import { generateKeyPair, SignJWT } from 'jose';
import { Authenticator } from '../src/server/auth/authenticator.js';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '200000' } } });
const CALLS = Number(values.calls);
const { privateKey } = await generateKeyPair('ES256');
const iss = 'https://idp.example.com';
const token = await new SignJWT({
  email: 'alice@example.com',
  name: 'Alice Example',
  groups: ['eng', 'ops', 'leads'],
  nonce: 'x'.repeat(300),
})
  .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
  .setIssuer(iss)
  .setSubject('alice')
  .setAudience('jitctl')
  .setIssuedAt()
  .setExpirationTime('1h')
  .sign(privateKey);
const auth = new Authenticator({
  verifiers: [
    {
      issuer: iss,
      verify: async () => ({
        caller: { iss, sub: 'alice', kind: 'human', groups: [] },
        expiresAt: Date.now() + 3_600_000,
      }),
    } as never,
  ],
  clock: { now: () => Date.now() } as never,
  publicUrl: 'https://broker',
});
const header = `Bearer ${token}`;
await auth.authenticate(header);
for (let round = 0; round < 3; round++) {
  const before = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await auth.authenticate(header);
  const used = process.cpuUsage(before);
  console.log(
    `token ${token.length} bytes: ${(((used.user + used.system) / CALLS) * 1000).toFixed(0)} ns CPU per cached authenticate`,
  );
}
