import { resolveServer, resolveStoreKind } from '../cli/config.js';
import type { Context } from '../cli/context.js';
import { AuthError } from '../cli/errors.js';
import { style } from '../cli/output.js';
import {
  decodeSession,
  type SessionRecord,
  serverOfKey,
  serverPrefix,
  sessionKey,
} from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';

/**
 * `jitctl logout [--all]`: forgets the session and every credential of a broker (`--all`: of
 * every broker in the store), then asks the identity provider to revoke the refresh token
 * (RFC 7009), best effort: the local copies are gone whether or not it answers. Idempotent: a
 * second logout finds nothing and succeeds.
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  all?: boolean | undefined;
}

/** Removes every entry of `server`; returns the session that was stored, if any. */
async function forget(
  store: CredentialStore,
  server: string,
): Promise<{ session: SessionRecord | undefined; removed: number }> {
  const session = decodeSession(await store.get(sessionKey(server)));
  const keys = new Set(await store.list(serverPrefix(server)));
  keys.add(sessionKey(server));
  for (const key of keys) await store.delete(key);
  return { session, removed: keys.size - 1 };
}

/** Revokes the refresh token at its provider; a message for stderr when that did not work. */
async function revoke(ctx: Context, session: SessionRecord): Promise<string | undefined> {
  if (session.kind !== 'oidc' || !session.refreshToken) return undefined;
  try {
    const { discover, oidc } = await import('../auth/oidc.js');
    const config = await discover(ctx.env, session);
    if (!config.serverMetadata().revocation_endpoint) {
      return 'the identity provider offers no revocation; its refresh token lapses on its own';
    }
    config.timeout = 5;
    await oidc.tokenRevocation(config, session.refreshToken.reveal(), {
      token_type_hint: 'refresh_token',
    });
    return undefined;
  } catch (err) {
    const { idpError } = await import('../auth/oidc.js');
    return `could not revoke the refresh token at the identity provider (${idpError(err, session.issuer, 'revocation').message}); it lapses on its own`;
  }
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  const kind = await resolveStoreKind(ctx, options.store);
  const { openStore } = await import('../credentials/index.js');
  const store = await openStore(ctx, kind);
  const io = ctx.io;

  let servers: string[];
  if (options.all) {
    const found = (await store.list()).map(serverOfKey);
    servers = [...new Set(found.filter((s): s is string => s !== undefined))].sort();
  } else {
    // resolveServer's AuthError means no broker is configured: then there is nothing to forget.
    const server = await resolveServer(ctx, options.server).catch((err: unknown) => {
      if (err instanceof AuthError) return undefined;
      throw err;
    });
    servers = server === undefined ? [] : [server];
  }
  if (servers.length === 0) {
    io.err('Not signed in to any broker; nothing to do.\n');
    return 0;
  }

  for (const server of servers) {
    const { session, removed } = await forget(store, server);
    if (!session && removed === 0) {
      io.err(`Not signed in to ${server}; nothing to do.\n`);
      continue;
    }
    const what = [
      session ? 'session' : undefined,
      removed > 0 ? `${removed} credential${removed === 1 ? '' : 's'}` : undefined,
    ]
      .filter(Boolean)
      .join(' and ');
    io.err(`${style(io, 'green', '✔')} Signed out of ${server} (removed the ${what})\n`);
    if (session) {
      const warning = await revoke(ctx, session);
      if (warning) io.err(`${style(io, 'yellow', '!')} ${warning}\n`);
    }
  }
  return 0;
}
