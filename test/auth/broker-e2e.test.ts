import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession } from '../../src/auth/index.js';
import { type Context, createContext } from '../../src/cli/context.js';
import { type TestIO, testIO } from '../../src/cli/io.js';
import { BrokerClient } from '../../src/client/broker-client.js';
import { openStore } from '../../src/credentials/index.js';
import { decodeSession, sessionKey } from '../../src/credentials/records.js';
import { DEV_USERS } from '../../src/server/dev/index.js';
import type { RunningBroker } from '../../src/server/start.js';
import { spawnCli, type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, deviceLoginUrl } from '../support/dev-browser.js';
import { passwordOnlySession } from '../support/password-session.js';
import { type InProcessDevBroker, startInProcessDevBroker } from './dev-broker.js';

/**
 * The whole identity story against the real broker in --dev mode (its development identity
 * provider mounted under /idp, the demo policy): alice and lee sign in with the jitctl binary;
 * the broker accepts their ID tokens; alice's request for prod-deploy and lee's approval both
 * need fresh MFA (the demo policy's step_up), which the session obtains by RFC 9470 step-up
 * (the person adds the one-time code), after which the broker accepts the retried call.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const lee = DEV_USERS.find((u) => u.username === 'lee')!;
let broker: RunningBroker;
let dev: InProcessDevBroker;
const homes: Record<string, TestHome> = {};

beforeAll(async () => {
  dev = await startInProcessDevBroker();
  broker = dev.broker;
  for (const name of ['alice', 'lee']) {
    homes[name] = testHome({ JITCTL_STORE: 'file', JITCTL_FILE_PASSPHRASE: `${name} passphrase` });
  }
});
afterAll(async () => {
  await dev?.close();
  for (const h of Object.values(homes)) h.cleanup();
});

async function login(who: typeof alice) {
  const h = homes[who.username]!;
  const cli = spawnCli(['login', '--server', broker.url], { env: h.env });
  await cli.waitForOutput(/user_code=/);
  // The broker's roles ask for mfa (sign_in_acr_values), so login asks for it too.
  await completeDeviceLogin(deviceLoginUrl(cli.stderr())!, who, { mfa: true });
  return cli.done;
}

async function clientFor(
  who: typeof alice,
): Promise<{ client: BrokerClient; io: TestIO; ctx: Context }> {
  const io = testIO();
  const ctx = createContext({
    io,
    env: { ...homes[who.username]!.env },
    openBrowser: async () => false,
  });
  const store = await openStore(ctx, 'file');
  const session = await openSession(ctx, broker.url, store);
  return { client: new BrokerClient({ server: broker.url, session, clock: ctx.clock }), io, ctx };
}

/** Plays the person for the next step-up sign-in the session prints. */
async function completeStepUp(io: TestIO, who: typeof alice): Promise<void> {
  await expect
    .poll(() => deviceLoginUrl(io.stderrText()), { timeout: 20_000, interval: 50 })
    .toBeDefined();
  await completeDeviceLogin(deviceLoginUrl(io.stderrText())!, who, { mfa: true });
}

describe('identity against jitctl server --dev', () => {
  it('alice and lee sign in; the broker knows who they are from their ID tokens', async () => {
    for (const who of [alice, lee]) {
      const r = await login(who);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`Signed in to ${broker.url} as ${who.username} (${who.email})`);
    }
    const { client } = await clientFor(alice);
    const me = await client.me();
    expect(me).toMatchObject({
      iss: broker.dev!.issuer,
      sub: 'alice',
      email: 'alice@example.com',
      groups: ['developers'],
    });
    expect(me.requestable).toContain('prod-deploy');
    await client.close();
  });

  it('login signed both in at mfa; the step-up tests start from password-only sessions', async () => {
    for (const who of [alice, lee]) {
      const { ctx } = await clientFor(who);
      const store = await openStore(ctx, 'file');
      expect(decodeSession(await store.get(sessionKey(broker.url)))?.acr).toBe('mfa');
      // What a person has when the identity provider ignored the acr login asked for.
      await passwordOnlySession(homes[who.username]!.env, broker.url, who);
      expect(decodeSession(await store.get(sessionKey(broker.url)))?.acr).toBe('pwd');
    }
  });

  it('a request that needs MFA steps up, then the broker files it', async () => {
    const { client, io } = await clientFor(alice);
    const created = client.createRequest(
      { role: 'prod-deploy', duration: '15m', reason: 'hotfix INC-4211' },
      `e2e-${Date.now()}`,
    );
    await completeStepUp(io, alice);
    const request = await created;
    expect(request).toMatchObject({ role: 'prod-deploy', state: 'pending' });
    expect(io.stderrText()).toMatch(/alice: .+\(mfa within 5m\)/);
    await client.close();
  });

  it('lee approves: the review needs fresh MFA, step-up gets it, the approval goes through', async () => {
    const { client, io, ctx } = await clientFor(lee);
    const page = await client.listRequests({ state: 'pending', reviewable: true });
    const pending = page.items.find((r) => r.role === 'prod-deploy');
    expect(pending).toBeDefined();

    const reviewed = client.review(pending!.id, { decision: 'approve', comment: 'ok' });
    await completeStepUp(io, lee);
    const after = await reviewed;
    expect(after.state).toBe('approved');
    expect(after.reviews[0]?.reviewer.sub).toBe('lee');

    const store = await openStore(ctx, 'file');
    const session = decodeSession(await store.get(sessionKey(broker.url)))!;
    expect(session.acr).toBe('mfa');
    await client.close();
  });

  it('the broker never logged a token', async () => {
    const tokens: string[] = [];
    for (const who of [alice, lee]) {
      const ctx = createContext({ io: testIO(), env: { ...homes[who.username]!.env } });
      const store = await openStore(ctx, 'file');
      const s = decodeSession(await store.get(sessionKey(broker.url)))!;
      tokens.push(s.bearer.reveal());
      if (s.refreshToken) tokens.push(s.refreshToken.reveal());
    }
    const log = dev.log();
    expect(log.length).toBeGreaterThan(0);
    for (const t of tokens) {
      expect(log).not.toContain(t);
      // Not even a JWT's signature part on its own.
      const parts = t.split('.');
      if (parts.length === 3) expect(log).not.toContain(parts[2]!);
    }
  });
});
