import type { Secret } from '../api/secret.js';
import type { StepUpChallenge } from '../api/step-up.js';

/**
 * The contract between the API client and the login machinery: the client asks for a bearer
 * token before each call, and for a step-up when the broker answers with an RFC 9470 challenge.
 * Implemented in src/auth/ (issue #3); the client (src/client/) depends only on this interface.
 */
export interface SessionManager {
  readonly server: string;
  /**
   * A bearer token for the broker. Refreshes first (one process at a time, under a lock) when
   * the token expires within a minute; throws AuthError (exit 4) when there is no usable session.
   */
  bearer(): Promise<Secret>;
  /**
   * Signs in again asking for the challenge's acr and max_age (RFC 9470 §4), stores the new
   * session, and resolves; the caller then retries its call once. Throws AuthError when the
   * step-up cannot happen (no terminal for the device flow, refused, timed out).
   */
  stepUp(challenge: StepUpChallenge, why: string): Promise<void>;
}
