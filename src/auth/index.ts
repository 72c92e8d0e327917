import type { Context } from '../cli/context.js';
import { JitError } from '../cli/errors.js';
import type { CredentialStore } from '../credentials/store.js';
import type { SessionManager } from './session.js';

export type { SessionManager } from './session.js';

/** The session with `server` kept in `store` (issue #3 builds it). */
export async function openSession(
  _ctx: Context,
  _server: string,
  _store: CredentialStore,
): Promise<SessionManager> {
  throw new JitError('sessions are not built yet');
}
