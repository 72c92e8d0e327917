import { describeGroups, describeIdentity } from '../auth/describe.js';
import type { FlowChoice } from '../auth/sign-in.js';
import {
  configFile,
  loadUserConfig,
  normalizeServer,
  parseStoreKind,
  resolveStoreKind,
  saveUserConfig,
} from '../cli/config.js';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import { style } from '../cli/output.js';
import { encodeSession, type SessionRecord, sessionKey } from '../credentials/records.js';

/**
 * `jitctl login [--server URL] [--device | --browser] [--no-open]`: asks the broker where to
 * sign in (GET /v1/config), signs in there (device code or browser, src/auth/sign-in.ts), stores
 * the session under the broker's key and remembers the broker as the default.
 *
 * Each way of obtaining a session is one function returning a SessionRecord; pipelines'
 * `--federated-token` (RFC 8693 token exchange, issue #5) becomes a second one beside
 * {@link interactiveLogin}, and everything after it (store, config, message) stays shared.
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  device?: boolean | undefined;
  browser?: boolean | undefined;
  /** commander's `--no-open`: false when given. */
  open?: boolean | undefined;
  federatedToken?: string | undefined;
}

/** `--server`, then JITCTL_SERVER, then the config file; login cannot guess a broker. */
async function loginServer(ctx: Context, flag: string | undefined): Promise<string> {
  if (flag) return normalizeServer(flag, ctx.env);
  if (ctx.env.JITCTL_SERVER)
    return normalizeServer(ctx.env.JITCTL_SERVER, ctx.env, 'JITCTL_SERVER');
  const config = await loadUserConfig(ctx);
  if (config.server) return normalizeServer(config.server, ctx.env, `${configFile(ctx)}: "server"`);
  throw new UsageError('which broker? no --server given and none configured', {
    hint: 'run `jitctl login --server https://jit.example.com` (the URL your team uses; `jitctl server --dev` prints its own)',
  });
}

async function interactiveLogin(
  ctx: Context,
  server: string,
  options: Options,
): Promise<SessionRecord> {
  const [{ fetchIdpSettings }, { signIn }] = await Promise.all([
    import('../auth/broker-config.js'),
    import('../auth/sign-in.js'),
  ]);
  const idp = await fetchIdpSettings(ctx, server);
  const flow: FlowChoice = options.device ? 'device' : options.browser ? 'browser' : 'auto';
  return signIn(ctx, idp, {
    flow,
    open: options.open !== false,
    heading: `To sign in to ${server}`,
  });
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  if (options.device && options.browser) {
    throw new UsageError('choose one of --device and --browser');
  }
  if (options.federatedToken !== undefined) {
    throw new UsageError('`jitctl login --federated-token` is not available yet', {
      hint: 'pipelines sign in with a federated token once issue #5 lands; people use `jitctl login`',
    });
  }
  const server = await loginServer(ctx, options.server);
  const kind = await resolveStoreKind(ctx, options.store);
  // Open the store before anyone signs in: a locked keychain should fail now, not after.
  const { openStore } = await import('../credentials/index.js');
  const store = await openStore(ctx, kind);

  const session = await interactiveLogin(ctx, server, options);

  await store.set(sessionKey(server), encodeSession(session));
  await saveUserConfig(ctx, {
    server,
    // An explicit --store is remembered, or the next command would look in another store.
    ...(options.store ? { store: parseStoreKind(options.store, '--store') } : {}),
  });
  ctx.io.err(
    `${style(ctx.io, 'green', '✔')} Signed in to ${server} as ${describeIdentity(session.identity)}; groups: ${describeGroups(session.identity.groups)}\n`,
  );
  return 0;
}
