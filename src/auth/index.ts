import type { Context } from '../cli/context.js';
import type { CredentialStore } from '../credentials/store.js';
import type { SessionManager } from './session.js';
import { StoredSession } from './stored-session.js';

export type { SessionManager } from './session.js';
export { StoredSession } from './stored-session.js';

/** The session with `server` kept in `store`: bearer tokens refreshed as needed, and step-up. */
export async function openSession(
  ctx: Context,
  server: string,
  store: CredentialStore,
): Promise<SessionManager> {
  return new StoredSession(ctx, server, store);
}
