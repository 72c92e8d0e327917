import { fetchIdpSettings } from '../../src/auth/broker-config.js';
import { signIn } from '../../src/auth/sign-in.js';
import { saveUserConfig } from '../../src/cli/config.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { encodeSession, sessionKey } from '../../src/credentials/records.js';
import { completeDeviceLogin, deviceLoginUrl, type Person } from './dev-browser.js';

/**
 * A session signed in with a password only, kept in the person's file store the way `jitctl
 * login` keeps one. `jitctl login` itself asks for the level the broker's roles need
 * (`sign_in_acr_values`), so this is what a person has when the identity provider ignored that
 * request, or signed in before the policy asked for more: the starting point of every step-up
 * test. The device flow of src/auth/ is run in-process and the test plays the person.
 */
export async function passwordOnlySession(
  env: Record<string, string>,
  server: string,
  who: Person,
): Promise<void> {
  const io = testIO();
  const ctx = createContext({ io, env: { ...env }, openBrowser: async () => false });
  const idp = await fetchIdpSettings(ctx, server);
  const signing = signIn(
    ctx,
    { ...idp, signInAcrValues: [] },
    { flow: 'device', open: false, heading: 'To sign in' },
  );
  const deadline = Date.now() + 30_000;
  let url = deviceLoginUrl(io.stderrText());
  while (!url) {
    if (Date.now() > deadline) throw new Error(`no device code; stderr:\n${io.stderrText()}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 25);
      void signing.catch(() => resolve()).finally(() => clearTimeout(timer));
    });
    url = deviceLoginUrl(io.stderrText());
  }
  await completeDeviceLogin(url, who, { mfa: false });
  const session = await signing;
  const store = await openStore(ctx, 'file');
  await store.set(sessionKey(server), encodeSession(session));
  await saveUserConfig(ctx, { server });
}
