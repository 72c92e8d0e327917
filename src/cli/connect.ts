import type { SessionManager } from '../auth/session.js';
import type { BrokerClient, BrokerClientOptions } from '../client/broker-client.js';
import type { CredentialStore } from '../credentials/store.js';
import { resolveServer, resolveStoreKind } from './config.js';
import type { Context } from './context.js';

/**
 * What a command that talks to a broker needs, assembled in one place: the broker URL, the
 * credential store, the session and the API client. Modules load lazily so that commands which
 * never reach this point pay nothing for them.
 */
export interface Connection {
  server: string;
  store: CredentialStore;
  session: SessionManager;
  client: BrokerClient;
}

export interface ConnectOptions {
  server?: string | undefined;
  store?: string | undefined;
}

export async function connect(
  ctx: Context,
  opts: ConnectOptions,
  /** Overrides of the API client's settings (attempts, timeouts) for quick side lookups. */
  clientOptions: Partial<
    Pick<BrokerClientOptions, 'attempts' | 'connectTimeoutMs' | 'readTimeoutMs'>
  > = {},
): Promise<Connection> {
  const server = await resolveServer(ctx, opts.server);
  const kind = await resolveStoreKind(ctx, opts.store);
  const [{ openStore }, { openSession }, { BrokerClient }] = await Promise.all([
    import('../credentials/index.js'),
    import('../auth/index.js'),
    import('../client/broker-client.js'),
  ]);
  const store = await openStore(ctx, kind);
  const session = await openSession(ctx, server, store);
  const client = new BrokerClient({
    server,
    session,
    clock: ctx.clock,
    signal: ctx.interruptSignal(),
    ...(ctx.debug ? { debug: (line: string) => ctx.io.err(`debug: ${line}\n`) } : {}),
    ...clientOptions,
  });
  return { server, store, session, client };
}

/**
 * Connects, hands the connection to `use`, and closes the client however `use` ends: the one
 * place every command that talks to a broker gets its connection from.
 */
export async function withConnection<T>(
  ctx: Context,
  opts: ConnectOptions,
  use: (conn: Connection) => Promise<T>,
): Promise<T> {
  const conn = await connect(ctx, opts);
  try {
    return await use(conn);
  } finally {
    await conn.client.close();
  }
}

/**
 * A connection over a store that is already open (exec's, whose file store may have asked for a
 * passphrase once already), for calls made while a command runs or just before: its client never
 * listens for Ctrl-C (exec passes that on to the command) and gives up sooner than a command a
 * person waits on would.
 */
export async function connectOver(
  ctx: Context,
  server: string,
  store: CredentialStore,
): Promise<Connection> {
  const [{ openSession }, { BrokerClient }] = await Promise.all([
    import('../auth/index.js'),
    import('../client/broker-client.js'),
  ]);
  const session = await openSession(ctx, server, store);
  const client = new BrokerClient({
    server,
    session,
    clock: ctx.clock,
    attempts: 2,
    readTimeoutMs: 10_000,
    ...(ctx.debug ? { debug: (line: string) => ctx.io.err(`debug: ${line}\n`) } : {}),
  });
  return { server, store, session, client };
}
