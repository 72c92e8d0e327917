import { pagesHomeUrl } from '../api/links.js';
import type { Context } from '../cli/context.js';
import { JitError, UsageError } from '../cli/errors.js';
import { safe, style } from '../cli/output.js';
import type { ConfigKey } from '../server/config.js';
import type { RunningBroker } from '../server/start.js';

/**
 * `jitctl server`: run the broker until SIGTERM or SIGINT, then shut down gracefully (stop
 * accepting, answer waiting long polls, finish in-flight requests, close the database). JSON logs
 * go to stdout for the log collector; human messages (the start line, the --dev banner, errors)
 * go to stderr. Settings: flags > JITCTL_SERVER_* > --config file > defaults (docs/operations.md).
 */
export interface Options {
  listen?: string | undefined;
  db?: string | undefined;
  policy?: string | undefined;
  oidcIssuer?: string | undefined;
  oidcClientId?: string | undefined;
  config?: string | undefined;
  dev?: boolean | undefined;
  dataDir?: string | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  const [{ ConfigError, loadServerConfig }, { startBroker, StartAborted }] = await Promise.all([
    import('../server/config.js'),
    import('../server/start.js'),
  ]);
  const flags: Partial<Record<ConfigKey, string | boolean>> = {};
  if (options.listen !== undefined) flags.listen = options.listen;
  if (options.db !== undefined) flags.db = options.db;
  if (options.policy !== undefined) flags.policy = options.policy;
  if (options.oidcIssuer !== undefined) flags.oidc_issuer = options.oidcIssuer;
  if (options.oidcClientId !== undefined) flags.oidc_client_id = options.oidcClientId;
  if (options.dev) flags.dev = true;
  if (options.dataDir !== undefined) flags.data_dir = options.dataDir;

  let config: Awaited<ReturnType<typeof loadServerConfig>>;
  try {
    config = await loadServerConfig({
      flags,
      configFile: options.config,
      env: ctx.env,
      cwd: process.cwd(),
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message, { hint: err.hint });
    throw err;
  }

  const signal = ctx.interruptSignal();
  let broker: RunningBroker;
  try {
    broker = await startBroker(config, { logStream: ctx.io.stdout, env: ctx.env, signal });
  } catch (err) {
    if (err instanceof StartAborted) {
      // SIGTERM while waiting for the database: a clean stop, like any other shutdown.
      ctx.io.err('stopped before the database could be reached\n');
      return 0;
    }
    throw await startupError(err, config.listen);
  }

  if (broker.dev) printDevBanner(ctx, broker);
  else
    ctx.io.err(
      `jitctl broker listening on ${broker.url} (public URL ${broker.publicUrl}; ` +
        `${broker.policy.roles.size} roles; ${broker.db.description})\n`,
    );

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  ctx.io.err('shutting down: finishing requests in flight (Ctrl-C again to force)\n');
  await broker.close();
  return 0;
}

/** Start-up failures as the operator should read them: what failed, where, and what to do. */
async function startupError(
  err: unknown,
  listen: { host: string; port: number },
): Promise<JitError> {
  const [
    { PolicyError },
    { SigningKeyError },
    { DatabaseUrlError },
    { PrivateFileError },
    { DatabaseLockedError },
  ] = await Promise.all([
    import('../server/policy/types.js'),
    import('../server/mint/keys.js'),
    import('../server/store/database.js'),
    import('../server/private-files.js'),
    import('../server/store/sqlite-lock.js'),
  ]);
  // Settings checked at start (a webhook's signing secret, SMTP for email routes): like the
  // settings checked when they are read, a usage error with the fix.
  const { ConfigError } = await import('../server/config.js');
  if (err instanceof ConfigError) return new UsageError(err.message, { hint: err.hint });
  if (err instanceof PolicyError) {
    return new JitError(`the policy is invalid:\n${err.message}`, 1, {
      hint: 'fix the file (`jitctl policy check FILE` shows the same errors), then start again',
    });
  }
  if (err instanceof SigningKeyError) return new JitError(err.message, 1, { hint: err.hint });
  if (err instanceof DatabaseUrlError || err instanceof PrivateFileError) {
    return new JitError(err.message, 1);
  }
  if (err instanceof DatabaseLockedError) return new JitError(err.message, 1, { hint: err.hint });
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'EADDRINUSE') {
    return new JitError(
      `cannot listen on ${listen.host}:${listen.port}: the address is in use`,
      1,
      {
        hint: 'stop the other process or choose another --listen address',
      },
    );
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new JitError(`cannot listen on ${listen.host}:${listen.port} (${String(code)})`, 1, {
      hint: 'ports below 1024 need privileges; the host must be an address of this machine',
    });
  }
  const { isDatabaseError } = await import('../server/store/database.js');
  if (isDatabaseError(err)) {
    return new JitError(`cannot open the database: ${(err as Error).message}`, 1, {
      hint: 'check --db / JITCTL_SERVER_DB and that the database server is reachable',
      cause: err,
    });
  }
  if (err instanceof Error && /migration/.test(err.message)) return new JitError(err.message, 1);
  return err instanceof JitError ? err : new JitError((err as Error).message, 1, { cause: err });
}

function printDevBanner(ctx: Context, broker: RunningBroker): void {
  const dev = broker.dev!;
  const w = (s: string) => ctx.io.err(`${s}\n`);
  w('');
  w(
    style(
      ctx.io,
      'yellow',
      '⚠  DEVELOPMENT MODE: a built-in identity provider with PUBLIC demo passwords and TOTP secrets.',
    ),
  );
  w(
    style(ctx.io, 'yellow', '   Never use --dev for real access or expose it beyond this machine.'),
  );
  w('');
  w(`  broker     ${broker.url}`);
  w(`  issuer     ${dev.issuer}`);
  w(`  database   ${broker.db.description}`);
  w(`  roles      ${[...broker.policy.roles.keys()].join(', ')}`);
  w(`  review     ${pagesHomeUrl(broker.url)}   (the review pages: sign in as lee)`);
  w('');
  w('  demo users (password, TOTP secret for the second factor, groups):');
  const width = Math.max(...dev.users.map((u) => u.username.length));
  const pwWidth = Math.max(...dev.users.map((u) => u.password.length));
  for (const u of dev.users) {
    w(
      `    ${safe(u.username).padEnd(width)}  ${safe(u.password).padEnd(pwWidth)}  ${safe(u.totpSecret)}  ${u.groups.map(safe).join(', ')}`,
    );
  }
  w('');
  w(`  sign in:   jitctl login --server ${broker.url}`);
  w('');
}
