import type { SessionRecord } from '../credentials/records.js';

/**
 * When a session's bearer token counts as spent. Kept free of openid-client so that every
 * command can ask cheaply; the refresh itself (refresh.ts) loads only when it is due.
 */

/** Refresh when the bearer token expires within this long (clock skew, slow calls). */
export const REFRESH_SKEW_MS = 60_000;

export function needsRefresh(session: Pick<SessionRecord, 'expiresAt'>, now: number): boolean {
  return session.expiresAt - now <= REFRESH_SKEW_MS;
}
