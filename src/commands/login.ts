import { docPath } from '../api/docs.js';
import { describeGroups, describeIdentity } from '../auth/describe.js';
import type { FlowChoice } from '../auth/sign-in.js';
import { parseStoreKind, resolveServer, resolveStoreKind, saveUserConfig } from '../cli/config.js';
import type { Context } from '../cli/context.js';
import { AuthError, JitError, UsageError } from '../cli/errors.js';
import { clockTime, relative, safe, style } from '../cli/output.js';
import { KEYCHAIN_FIXES, KeychainError } from '../credentials/keychain-errors.js';
import { encodeSession, type SessionRecord, sessionKey } from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';

/**
 * `jitctl login [--server URL] [--device | --browser] [--no-open]`: asks the broker where to
 * sign in (GET /v1/config), signs in there (device code or browser, src/auth/sign-in.ts), stores
 * the session under the broker's key and remembers the broker as the default.
 * `jitctl login --federated-token FILE|-` (or JITCTL_FEDERATED_TOKEN) signs in a pipeline
 * instead: its OIDC token is exchanged at the broker (RFC 8693, src/auth/federated.ts).
 *
 * Each way of obtaining a session ends in a SessionRecord ({@link interactiveLogin}, or the
 * token exchange); everything after it (store, config, message) is shared.
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

/** The broker as every command finds it (src/cli/config.ts); login cannot guess one. */
async function loginServer(ctx: Context, flag: string | undefined): Promise<string> {
  try {
    return await resolveServer(ctx, flag);
  } catch (err) {
    // resolveServer's AuthError means none is configured; for login, that is a usage error.
    if (!(err instanceof AuthError)) throw err;
    throw new UsageError('which broker? no --server given and none configured', {
      hint: 'run `jitctl login --server https://jit.example.com` (the URL your team uses; `jitctl server --dev` prints its own)',
    });
  }
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
  // As strong as the roles people request need (the broker says which acr), so that the first
  // `jitctl request` after this sign-in does not ask for another one. As an essential claim, like
  // step-up; no max_age: this sign-in is fresh anyway.
  const acrValues = idp.signInAcrValues ?? [];
  const session = await signIn(ctx, idp, {
    flow,
    open: options.open !== false,
    heading: `To sign in to ${server}`,
    stepUp: acrValues.length > 0 ? { acrValues } : undefined,
  });
  if (acrValues.length > 0 && !acrValues.includes(session.acr ?? '')) {
    ctx.io.err(
      `${style(ctx.io, 'yellow', '!')} the identity provider signed you in at ${safe(session.acr ?? 'an unknown level')}, not ${acrValues.map((a) => safe(a)).join(' or ')}: roles that need it ask for a fresh sign-in when you request them\n`,
    );
  }
  return session;
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  if (options.device && options.browser) {
    throw new UsageError('choose one of --device and --browser');
  }
  const ambient = ctx.env.JITCTL_FEDERATED_TOKEN;
  const pipeline =
    options.federatedToken !== undefined || (ambient !== undefined && ambient !== '');
  if (pipeline && (options.device || options.browser)) {
    throw new UsageError(
      '--device and --browser are for people; a federated token signs in a pipeline',
      {
        hint: 'drop one of them (JITCTL_FEDERATED_TOKEN counts as --federated-token)',
      },
    );
  }
  // A pipeline's token is read before any store or broker is touched: a bad source is a usage
  // error first. It is exchanged at the broker below, for a session without a refresh token.
  const federated = pipeline ? await import('../auth/federated.js') : undefined;
  const token = await federated?.readFederatedToken(ctx, options.federatedToken);
  const server = await loginServer(ctx, options.server);
  const kind = await resolveStoreKind(ctx, options.store);
  if (token && kind === 'memory' && options.federatedToken !== undefined) {
    throw new UsageError('a session in the memory store ends with this command', {
      hint: `pipelines keep it in the encrypted file store (JITCTL_STORE=file with JITCTL_FILE_PASSPHRASE from a CI secret), or set JITCTL_FEDERATED_TOKEN for every step and skip login (${docPath('pipelines.md')})`,
    });
  }
  // Open the store, and check that it can keep the session, before anyone signs in: a locked or
  // missing keychain fails now (with how to choose the file store), and the file store asks for
  // its passphrase now rather than after the sign-in.
  const { openStore } = await import('../credentials/index.js');
  const storeError = (err: unknown) =>
    token ? ciStoreError(ctx, err) : keychainLoginError(err, server);
  const store = await openStore(ctx, kind).catch((err: unknown) => {
    throw storeError(err);
  });
  await store.probe?.().catch((err: unknown) => {
    throw storeError(err);
  });

  const session =
    federated && token
      ? await federated.exchangeFederatedToken(ctx, server, token)
      : await interactiveLogin(ctx, server, options);

  await store.set(sessionKey(server), encodeSession(session));
  await rememberRolesAfterLogin(ctx, server, store);
  await saveUserConfig(ctx, {
    server,
    // An explicit --store is remembered, or the next command would look in another store.
    ...(options.store ? { store: parseStoreKind(options.store, '--store') } : {}),
  });
  if (session.kind === 'federated') {
    const left = relative(session.expiresAt, ctx.clock.now()).replace(/^in /, '');
    ctx.io.err(
      `${style(ctx.io, 'green', '✔')} Signed in to ${server} as pipeline ${describeIdentity(session.identity)} (${safe(session.identity.sub)}); ` +
        `groups: ${describeGroups(session.identity.groups)}; session valid until ${clockTime(session.expiresAt)} (${left}, no refresh)\n`,
    );
    if (kind === 'memory')
      ctx.io.err(
        '  nothing was stored: each command signs in with JITCTL_FEDERATED_TOKEN itself\n',
      );
    return 0;
  }
  ctx.io.err(
    `${style(ctx.io, 'green', '✔')} Signed in to ${server} as ${describeIdentity(session.identity)}; groups: ${describeGroups(session.identity.groups)}\n`,
  );
  return 0;
}

/**
 * Fetches the roles once with the new session, for completion and for hints that name a role's
 * own duration (src/cli/broker-cache.ts). Best effort and bounded: login has succeeded already.
 */
async function rememberRolesAfterLogin(
  ctx: Context,
  server: string,
  store: CredentialStore,
): Promise<void> {
  const [{ StoredSession }, { BrokerClient }, { rememberRoles }] = await Promise.all([
    import('../auth/index.js'),
    import('../client/broker-client.js'),
    import('../cli/broker-cache.js'),
  ]);
  const client = new BrokerClient({
    server,
    session: new StoredSession(ctx, server, store),
    clock: ctx.clock,
    attempts: 1,
    connectTimeoutMs: 3_000,
    readTimeoutMs: 3_000,
  });
  try {
    await rememberRoles(ctx, server, (await client.roles()).roles);
  } catch {
    // only a cache
  } finally {
    await client.close();
  }
}

/**
 * The keychain cannot keep a session here: say what is wrong with it, and how to sign in with
 * the encrypted file store instead (the choice is remembered for later commands).
 */
function keychainLoginError(err: unknown, server: string): unknown {
  if (!(err instanceof KeychainError)) return err;
  return new JitError(`cannot keep your session: ${err.message}`, err.exitCode, {
    hint: `${KEYCHAIN_FIXES[err.reason]}; or keep it in the encrypted file store instead: jitctl login --server ${server} --store file (remembered for later commands; JITCTL_FILE_PASSPHRASE for scripts)`,
    cause: err,
  });
}

/**
 * A CI runner rarely has an OS keychain (no D-Bus session): say what pipelines use instead,
 * rather than only the keychain's own message.
 */
function ciStoreError(ctx: Context, err: unknown): unknown {
  if (!ctx.ci || !(err instanceof JitError) || err instanceof UsageError) return err;
  return new JitError(err.message, err.exitCode, {
    hint: `in CI, keep the session in the encrypted file store: JITCTL_STORE=file and JITCTL_FILE_PASSPHRASE from a CI secret; or set JITCTL_FEDERATED_TOKEN for every step and skip login (${docPath('pipelines.md')})`,
    cause: err,
  });
}
