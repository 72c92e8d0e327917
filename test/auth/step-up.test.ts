import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSession } from '../../src/auth/index.js';
import { signIn } from '../../src/auth/sign-in.js';
import { stepUpReason, stepUpRequest } from '../../src/auth/step-up.js';
import { type Context, createContext } from '../../src/cli/context.js';
import { AuthError } from '../../src/cli/errors.js';
import { type TestIO, testIO } from '../../src/cli/io.js';
import { BrokerClient } from '../../src/client/broker-client.js';
import { memoryStore } from '../../src/credentials/memory-store.js';
import {
  decodeSession,
  encodeSession,
  type SessionRecord,
  sessionKey,
} from '../../src/credentials/records.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import { currentTotp, DEV_USERS } from '../../src/server/dev/index.js';
import { chromiumAvailable, launchChromium } from '../support/chromium.js';
import { type TestHome, testHome } from '../support/cli.js';
import { completeDeviceLogin, PageError } from '../support/dev-browser.js';
import { type StandInBroker, startStandInBroker } from './stand-in-broker.js';

/**
 * Step-up (RFC 9470) in one process, as every broker command meets it: the API client gets a
 * 401 with `insufficient_user_authentication`, the session signs in again asking for the acr as an
 * essential claim with max_age, stores the new session, and the client retries once. The broker
 * here is the stand-in whose `/v1/me` demands `mfa` within 5 minutes; the provider is real.
 */

const alice = DEV_USERS.find((u) => u.username === 'alice')!;
const bob = DEV_USERS.find((u) => u.username === 'bob')!;
let broker: StandInBroker;
let home: TestHome;
const controllers: AbortController[] = [];

beforeAll(async () => {
  broker = await startStandInBroker({ devicePollInterval: 1 });
  home = testHome();
});
afterAll(async () => {
  await broker?.stop();
  home?.cleanup();
});
afterEach(() => {
  for (const c of controllers.splice(0)) c.abort();
  broker.requireAcr = undefined;
});

function context(opts: { tty?: boolean; openBrowser?: (url: string) => Promise<boolean> } = {}): {
  ctx: Context;
  io: TestIO;
} {
  const io = testIO({ tty: opts.tty ?? false });
  const controller = new AbortController();
  controllers.push(controller);
  const base = createContext({
    io,
    env: { ...home.env },
    openBrowser: opts.openBrowser ?? (async () => false),
  });
  return { ctx: { ...base, interruptSignal: () => controller.signal }, io };
}

/** Waits for the `n`-th device sign-in URL in what the CLI printed. */
async function nthDeviceUrl(io: TestIO, n: number): Promise<string> {
  let url: string | undefined;
  await expect
    .poll(
      () => {
        const all = [...io.stderrText().matchAll(/https?:\/\/\S+user_code=[A-Z-]+/g)].map(
          (m) => m[0],
        );
        url = all[n - 1];
        return url;
      },
      { timeout: 15_000, interval: 50 },
    )
    .toBeDefined();
  return url!;
}

/** Alice signed in with her password only (acr pwd), stored in `store`. */
async function signedInWithPassword(
  ctx: Context,
  io: TestIO,
  store: CredentialStore,
): Promise<SessionRecord> {
  const idp = {
    issuer: broker.idp.issuer,
    clientId: broker.idp.clientId,
    scopes: broker.idp.scopes,
    deviceFlow: true,
  };
  const pending = signIn(ctx, idp, { flow: 'device', open: false, heading: 'To sign in' });
  await completeDeviceLogin(await nthDeviceUrl(io, 1), alice, { mfa: false });
  const session = await pending;
  expect(session.acr).toBe('pwd');
  await store.set(sessionKey(broker.url), encodeSession(session));
  return session;
}

describe('step-up', () => {
  it('asks again with an essential mfa acr and max_age, then the call succeeds', async () => {
    const { ctx, io } = context({ tty: true });
    const store = memoryStore();
    const before = await signedInWithPassword(ctx, io, store);
    const session = await openSession(ctx, broker.url, store);
    const client = new BrokerClient({ server: broker.url, session, clock: ctx.clock });

    // Password sign-in is enough until the broker asks for more.
    expect(((await client.me()) as unknown as { acr: string }).acr).toBe('pwd');

    broker.requireAcr = { acr: 'mfa', maxAgeSeconds: 300 };
    const me = client.me();
    const url = await nthDeviceUrl(io, 2);
    await completeDeviceLogin(url, alice, { mfa: true });
    const answer = (await me) as unknown as { sub: string; acr: string };
    expect(answer).toMatchObject({ sub: 'alice', acr: 'mfa' });

    expect(io.stderrText()).toContain(
      'alice: reading your profile needs a fresh MFA sign-in (mfa within 5m)',
    );
    const stored = decodeSession(await store.get(sessionKey(broker.url)))!;
    expect(stored.acr).toBe('mfa');
    expect(stored.authTime).toBeGreaterThanOrEqual(before.authTime!);
    expect(stored.bearer.reveal()).not.toBe(before.bearer.reveal());
    await client.close();
  });

  it('the provider insists on the one-time code: a password alone is refused on the page', async () => {
    const { ctx, io } = context();
    const store = memoryStore();
    await signedInWithPassword(ctx, io, store);
    const session = await openSession(ctx, broker.url, store);
    broker.requireAcr = { acr: 'mfa', maxAgeSeconds: 300 };
    const client = new BrokerClient({ server: broker.url, session, clock: ctx.clock });
    const me = client.me();
    me.catch(() => {});
    const url = await nthDeviceUrl(io, 2);
    const page = completeDeviceLogin(url, alice, { mfa: false });
    await expect(page).rejects.toThrow(PageError);
    await expect(page).rejects.toThrow(/needs your one-time code/);
    // The person walks away; Ctrl-C ends the wait and the stored session is unchanged.
    controllers.at(-1)!.abort();
    await expect(me).rejects.toMatchObject({ exitCode: 130 });
    expect(decodeSession(await store.get(sessionKey(broker.url)))!.acr).toBe('pwd');
    await client.close();
  });

  it('refuses a step-up completed by someone else, and stores nothing', async () => {
    const { ctx, io } = context();
    const store = memoryStore();
    await signedInWithPassword(ctx, io, store);
    const session = await openSession(ctx, broker.url, store);
    broker.requireAcr = { acr: 'mfa', maxAgeSeconds: 300 };
    const client = new BrokerClient({ server: broker.url, session, clock: ctx.clock });
    const me = client.me();
    me.catch(() => {});
    await completeDeviceLogin(await nthDeviceUrl(io, 2), bob, { mfa: true });
    await expect(me).rejects.toThrow(AuthError);
    await expect(me).rejects.toThrow(/you signed in as bob, but this session is alice's/);
    expect(decodeSession(await store.get(sessionKey(broker.url)))!.identity.sub).toBe('alice');
    await client.close();
  });

  it('through the browser flow in Chromium: the form names the code as required', async () => {
    if (!chromiumAvailable()) throw new Error('Chromium is needed: apt-get install chromium');
    const opened: string[] = [];
    const { ctx, io } = context({
      openBrowser: async (url) => {
        opened.push(url);
        return true;
      },
    });
    const store = memoryStore();
    await signedInWithPassword({ ...ctx, openBrowser: async () => false }, io, store);
    // Now a machine with a browser: $BROWSER set, so the automatic choice is the browser flow.
    const withBrowser: Context = { ...ctx, env: { ...ctx.env, BROWSER: 'x-test-browser' } };
    const session = await openSession(withBrowser, broker.url, store);
    broker.requireAcr = { acr: 'mfa', maxAgeSeconds: 300 };
    const client = new BrokerClient({ server: broker.url, session, clock: ctx.clock });
    const me = client.me();
    await expect.poll(() => opened.length, { timeout: 15_000 }).toBe(1);
    const auth = new URL(opened[0]!);
    expect(JSON.parse(auth.searchParams.get('claims')!)).toEqual({
      id_token: { acr: { essential: true, values: ['mfa'] } },
    });
    expect(auth.searchParams.get('max_age')).toBe('300');
    expect(auth.searchParams.has('acr_values')).toBe(false);
    expect(auth.searchParams.get('login_hint')).toBe('alice@example.com');

    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(opened[0]!);
      expect(await page.textContent('main')).toContain(
        'needs a fresh sign-in with your one-time code',
      );
      expect(await page.getByLabel('Username').inputValue()).toBe('alice@example.com');
      await page.getByLabel('Password').fill(alice.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect
        .poll(() => page.textContent('[role=alert]'))
        .toContain('needs your one-time code');
      await page.getByLabel('Password').fill(alice.password);
      await page.getByLabel(/One-time code/).fill(currentTotp(alice));
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect.poll(() => page.textContent('h1')).toBe('Signed in');
    } finally {
      await browser.close();
    }
    expect(((await me) as unknown as { acr: string }).acr).toBe('mfa');
    await client.close();
  });
});

describe('step-up wording and parameters', () => {
  const session = {
    identity: { iss: 'i', sub: 'lee', name: 'lee', email: null, groups: [] },
  } as unknown as SessionRecord;

  it('turns the challenge into what to ask for', () => {
    expect(stepUpRequest({ acrValues: 'mfa', maxAge: 300 })).toEqual({
      acrValues: ['mfa'],
      maxAge: 300,
    });
    expect(stepUpRequest({ acrValues: ' pwd  mfa ' })).toEqual({
      acrValues: ['pwd', 'mfa'],
      maxAge: undefined,
    });
    // max_age=0 would be dropped by providers in the device flow: at least one second.
    expect(stepUpRequest({ maxAge: 0 }).maxAge).toBe(1);
  });

  it('says why, with other people’s text made harmless', () => {
    expect(
      stepUpReason(
        session,
        { acrValues: ['mfa'], maxAge: 300 },
        'approving needs a fresh MFA sign-in',
      ),
    ).toBe('lee: approving needs a fresh MFA sign-in (mfa within 5m)');
    expect(stepUpReason(session, { acrValues: [] }, 'evil\u001b[31m red')).toBe(
      'lee: evil\\x1b[31m red',
    );
  });
});
