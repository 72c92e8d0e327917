import { createHash } from 'node:crypto';
import type { Context } from '../cli/context.js';
import { AuthError, UnreachableError } from '../cli/errors.js';
import {
  decodeSession,
  encodeSession,
  type SessionRecord,
  sessionKey,
} from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';
import { needsRefresh } from './expiry.js';
import { withFileLock } from './file-lock.js';
import { discover, idpError, oidc, sessionFromTokens } from './oidc.js';

/**
 * Refreshing a session's ID token with its refresh token (RFC 6749 §6), one process at a time.
 * Loaded only when a token is about to expire, so most commands never import openid-client.
 */

export function refreshLockName(server: string): string {
  return `refresh-${createHash('sha256').update(server).digest('hex').slice(0, 16)}`;
}

function expired(server: string, cause?: unknown): AuthError {
  return new AuthError(`your session with ${server} expired`, {
    hint: `run \`jitctl login --server ${server}\``,
    cause,
  });
}

export async function refreshSession(
  ctx: Context,
  server: string,
  store: CredentialStore,
): Promise<SessionRecord> {
  return withFileLock(ctx, refreshLockName(server), async () => {
    // Another process may have refreshed while this one waited for the lock.
    const latest = decodeSession(await store.get(sessionKey(server)));
    if (!latest) {
      throw new AuthError(`not signed in to ${server}`, {
        hint: `run \`jitctl login --server ${server}\``,
      });
    }
    const now = ctx.clock.now();
    if (!needsRefresh(latest, now)) return latest;
    if (latest.kind !== 'oidc' || !latest.refreshToken) {
      if (latest.expiresAt > now) return latest;
      throw expired(server);
    }
    let next: SessionRecord;
    try {
      const config = await discover(ctx.env, latest);
      const tokens = await oidc.refreshTokenGrant(config, latest.refreshToken.reveal());
      next = sessionFromTokens(latest, tokens, latest.refreshToken);
    } catch (err) {
      const mapped = idpError(err, latest.issuer, 'refresh');
      // A token that still works is better than none when the provider is briefly away.
      if (mapped instanceof UnreachableError && latest.expiresAt > now) return latest;
      if (mapped instanceof AuthError) throw expired(server, mapped);
      throw mapped;
    }
    if (next.identity.sub !== latest.identity.sub || next.identity.iss !== latest.identity.iss) {
      throw new AuthError(
        'the identity provider answered the refresh for another person; nothing was stored',
        {
          hint: `run \`jitctl login --server ${server}\``,
        },
      );
    }
    await store.set(sessionKey(server), encodeSession(next));
    return next;
  });
}
