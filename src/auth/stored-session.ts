import type { Secret } from '../api/secret.js';
import type { StepUpChallenge } from '../api/step-up.js';
import type { Context } from '../cli/context.js';
import { AuthError } from '../cli/errors.js';
import {
  decodeSession,
  encodeSession,
  type SessionRecord,
  sessionKey,
} from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';
import { needsRefresh } from './expiry.js';
import type { SessionManager } from './session.js';

/**
 * The session with one broker, as the API client sees it. The stored record is read once per
 * process; openid-client and the refresh machinery load only when the token is about to expire
 * or the broker asks for step-up, so an ordinary command costs one store read.
 */
export class StoredSession implements SessionManager {
  readonly server: string;
  readonly #ctx: Context;
  readonly #store: CredentialStore;
  #cached: SessionRecord | undefined;
  /** The session came from JITCTL_FEDERATED_TOKEN (memory only), not from the store. */
  #ambient = false;

  constructor(ctx: Context, server: string, store: CredentialStore) {
    this.#ctx = ctx;
    this.server = server;
    this.#store = store;
  }

  #notSignedIn(): AuthError {
    return new AuthError(`not signed in to ${this.server}`, {
      hint: `run \`jitctl login --server ${this.server}\``,
    });
  }

  /**
   * The session: with JITCTL_FEDERATED_TOKEN set, the one that token signs in to (exchanged once,
   * kept in memory: the variable says who this process is, whatever an earlier job left in the
   * store); otherwise the stored one (undefined when there is none, or it does not decode).
   */
  async current(): Promise<SessionRecord | undefined> {
    if (this.#cached) return this.#cached;
    const ambient = this.#ctx.env.JITCTL_FEDERATED_TOKEN;
    if (ambient !== undefined && ambient !== '') {
      const { ambientSession } = await import('./federated.js');
      this.#cached = await ambientSession(this.#ctx, this.server);
      this.#ambient = true;
      return this.#cached;
    }
    this.#cached = decodeSession(await this.#store.get(sessionKey(this.server)));
    return this.#cached;
  }

  async bearer(): Promise<Secret> {
    const session = await this.current();
    if (!session) throw this.#notSignedIn();
    const now = this.#ctx.clock.now();
    if (!needsRefresh(session, now)) return session.bearer;
    if (session.kind === 'federated') {
      // No refresh token: exchange the variable's token again, or say how to sign in again.
      const federated = await import('./federated.js');
      if (this.#ambient) {
        this.#cached = await federated.ambientSession(this.#ctx, this.server);
        return this.#cached.bearer;
      }
      if (session.expiresAt > now) return session.bearer;
      throw federated.federatedSessionExpired(this.server);
    }
    const { refreshSession } = await import('./refresh.js');
    this.#cached = await refreshSession(this.#ctx, this.server, this.#store);
    return this.#cached.bearer;
  }

  async stepUp(challenge: StepUpChallenge, why: string): Promise<void> {
    const session = await this.current();
    if (!session) throw this.#notSignedIn();
    const { stepUpSession } = await import('./step-up.js');
    const next = await stepUpSession(this.#ctx, this.server, session, challenge, why);
    await this.#store.set(sessionKey(this.server), encodeSession(next));
    this.#cached = next;
  }
}
