import { decodeProtectedHeader, EncryptJWT, jwtDecrypt } from 'jose';
import * as oidc from 'openid-client';
import { isLoopbackHost } from '../../api/loopback.js';
import type { Secret } from '../../api/secret.js';
import type { TokenVerifier } from '../auth/oidc-verifier.js';
import type { ServerClock } from '../clock.js';
import { HttpError } from '../errors.js';
import type { Caller } from '../policy/types.js';

/**
 * Signing in to the review pages: the broker is a web client of the identity provider
 * (authorization code + PKCE S256, state and nonce, openid-client 6). What a sign-in in progress
 * must remember (state, PKCE verifier, nonce, where to return, the step-up asked for) is sealed
 * into a short-lived cookie (a JWE, A256GCM, with a key every replica shares) rather than kept on
 * the server: starting a sign-in costs the broker nothing it must store, so the door cannot be
 * used to fill a table, and the answer may arrive at any replica. The cookie also binds the
 * answer to the browser that asked: a `code` and `state` pasted into another browser are refused.
 *
 * The ID token the provider returns is checked by openid-client (iss, aud, exp, nonce, max_age,
 * PKCE) and then verified like every API sign-in token by an {@link TokenVerifier} (pinned
 * algorithms, the provider's JWKS, never one of the broker's own keys); the Caller comes from
 * that verification, so the pages and the API see the same person the same way.
 */

export interface WebClient {
  issuer: string;
  clientId: string;
  /** Absent: a public client, PKCE alone. */
  clientSecret: Secret | undefined;
  redirectUri: string;
  scopes: string[];
}

/** What a step-up asks the provider for (from the API's RFC 9470 challenge). */
export interface StepUpAsk {
  /** acr values that satisfy the rule, any one of them. */
  acrValues: string[];
  /** Seconds; the sign-in must be at most this old. */
  maxAge: number;
}

export interface SignedIn {
  caller: Caller;
  returnTo: string;
  stepUp: StepUpAsk | undefined;
}

/** A sign-in that did not complete, said the way a person at the page needs to read it. */
export class SignInError extends Error {
  override name = 'SignInError';
  constructor(
    message: string,
    readonly status: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** How long a started sign-in may take (the provider's own interaction lasts 10 minutes too). */
export const SIGN_IN_TTL_S = 600;
const REQUEST_TIMEOUT_S = 10;

interface Sealed {
  s: string;
  v: string;
  n: string;
  r: string;
  u?: StepUpAsk;
}

export interface WebSignInOptions {
  client: WebClient;
  /** Verifies the returned ID token; its audience is the web client's id. */
  verifier: TokenVerifier;
  /** 32 bytes shared by every replica (src/server/pages/keys.ts). */
  key: Uint8Array;
  clock: ServerClock;
}

export class WebSignIn {
  #config: Promise<oidc.Configuration> | undefined;
  #authorizationOrigin: string | undefined;

  constructor(private readonly opts: WebSignInOptions) {}

  /**
   * The origin of the provider's authorization endpoint (the pages' CSP form-action): the
   * issuer's until discovery says otherwise.
   */
  get authorizationOrigin(): string {
    return this.#authorizationOrigin ?? new URL(this.opts.client.issuer).origin;
  }

  /** Discovers the provider ahead of the first sign-in; a failure now is retried then. */
  prepare(): void {
    this.#discover().catch(() => {});
  }

  /** Starts a sign-in: where to send the browser, and the sealed cookie to set first. */
  async begin(returnTo: string, stepUp?: StepUpAsk): Promise<{ location: string; cookie: string }> {
    const config = await this.#discover();
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const params: Record<string, string> = {
      redirect_uri: this.opts.client.redirectUri,
      scope: this.opts.client.scopes.join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    };
    if (stepUp) {
      // `acr_values` alone does not make a provider ask again when a session exists; an
      // essential acr through the claims parameter and max_age do (OpenID Connect Core §5.5.1.1).
      params.claims = JSON.stringify({
        id_token: { acr: { essential: true, values: stepUp.acrValues } },
      });
      params.max_age = String(Math.max(1, stepUp.maxAge));
    }
    const location = oidc.buildAuthorizationUrl(config, params).href;
    const now = Math.floor(this.opts.clock.now() / 1000);
    const sealed: Sealed = {
      s: state,
      v: verifier,
      n: nonce,
      r: returnTo,
      ...(stepUp ? { u: stepUp } : {}),
    };
    const cookie = await new EncryptJWT({ ...sealed })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .setIssuedAt(now)
      .setExpirationTime(now + SIGN_IN_TTL_S)
      .encrypt(this.opts.key);
    return { location, cookie };
  }

  /** Completes a sign-in from the provider's answer (the callback's query string). */
  async finish(query: string, cookie: string | undefined): Promise<SignedIn> {
    const params = new URLSearchParams(query);
    const sealed = await this.#unseal(cookie);
    const error = params.get('error');
    if (error !== null) throw providerRefused(error, params.get('error_description'));
    if (params.get('state') !== sealed.s) {
      throw new SignInError(
        'This answer from the identity provider does not belong to the sign-in this browser started.',
        400,
        'Start the sign-in again from the page you wanted.',
      );
    }
    const config = await this.#discover();
    const currentUrl = new URL(this.opts.client.redirectUri);
    currentUrl.search = params.toString();
    let idToken: string | undefined;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, currentUrl, {
        pkceCodeVerifier: sealed.v,
        expectedState: sealed.s,
        expectedNonce: sealed.n,
        idTokenExpected: true,
        ...(sealed.u ? { maxAge: sealed.u.maxAge } : {}),
      });
      idToken = tokens.id_token;
    } catch (err) {
      throw this.#failure(err, 'sign-in');
    }
    if (!idToken) throw new SignInError('The identity provider returned no ID token.', 502);
    let caller: Caller;
    try {
      caller = (await this.opts.verifier.verify(idToken, decodeProtectedHeader(idToken))).caller;
    } catch (err) {
      if (err instanceof HttpError && err.status === 503)
        throw new SignInError(err.message, 503, err.hint);
      throw new SignInError(
        `The identity provider's ID token was refused: ${err instanceof Error ? err.message : String(err)}`,
        401,
      );
    }
    if (sealed.u) this.#checkStepUp(caller, sealed.u);
    return { caller, returnTo: sealed.r, stepUp: sealed.u };
  }

  /** The provider answered, but not as strongly as asked: say so rather than loop. */
  #checkStepUp(caller: Caller, ask: StepUpAsk): void {
    if (caller.acr === null || !ask.acrValues.includes(caller.acr)) {
      throw new SignInError(
        `The identity provider signed you in at level "${caller.acr ?? 'none'}", and this step needs ${ask.acrValues.map((v) => `"${v}"`).join(' or ')}.`,
        403,
        'Sign in with your second factor (one-time code or security key); ask your administrator if your account has none.',
      );
    }
    const age = this.opts.clock.now() - (caller.authTime ?? 0) * 1000;
    if (caller.authTime === null || age > ask.maxAge * 1000 + 1000) {
      throw new SignInError(
        'The identity provider did not sign you in again just now, and this step needs a fresh sign-in.',
        403,
        'Start again; if it keeps happening, your identity provider ignores max_age.',
      );
    }
  }

  async #unseal(cookie: string | undefined): Promise<Sealed> {
    const expired = new SignInError(
      'This sign-in has expired or was started in another browser.',
      400,
      'Start again from the page you wanted; finish signing in within 10 minutes.',
    );
    if (!cookie) throw expired;
    try {
      const { payload } = await jwtDecrypt(cookie, this.opts.key, {
        keyManagementAlgorithms: ['dir'],
        contentEncryptionAlgorithms: ['A256GCM'],
        currentDate: new Date(this.opts.clock.now()),
        requiredClaims: ['exp'],
      });
      const p = payload as unknown as Partial<Sealed>;
      if (
        typeof p.s !== 'string' ||
        typeof p.v !== 'string' ||
        typeof p.n !== 'string' ||
        typeof p.r !== 'string'
      )
        throw expired;
      return p as Sealed;
    } catch {
      throw expired;
    }
  }

  async #discover(): Promise<oidc.Configuration> {
    this.#config ??= this.#load().catch((err: unknown) => {
      this.#config = undefined;
      throw err;
    });
    return this.#config;
  }

  async #load(): Promise<oidc.Configuration> {
    const { client } = this.opts;
    const url = new URL(client.issuer);
    const insecure = url.protocol === 'http:';
    if (insecure && !isLoopbackHost(url.hostname))
      throw new SignInError(`The identity provider ${url.href} must use https.`, 503);
    try {
      const config = await oidc.discovery(
        url,
        client.clientId,
        undefined,
        client.clientSecret ? oidc.ClientSecretBasic(client.clientSecret.reveal()) : oidc.None(),
        {
          timeout: REQUEST_TIMEOUT_S,
          ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
        },
      );
      config.timeout = REQUEST_TIMEOUT_S;
      const endpoint = config.serverMetadata().authorization_endpoint;
      if (endpoint) this.#authorizationOrigin = new URL(endpoint).origin;
      return config;
    } catch (err) {
      throw this.#failure(err, 'discovery');
    }
  }

  #failure(err: unknown, step: string): SignInError {
    if (err instanceof SignInError) return err;
    if (err instanceof oidc.ResponseBodyError || err instanceof oidc.AuthorizationResponseError)
      return providerRefused(err.error, err.error_description ?? null);
    const name = (err as { name?: unknown })?.name;
    const network =
      name === 'TimeoutError' ||
      (err instanceof TypeError && /fetch failed/i.test(err.message)) ||
      (err as { code?: unknown })?.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM';
    if (network)
      return new SignInError(
        `The identity provider at ${this.opts.client.issuer} cannot be reached (${step}).`,
        503,
        'Try again in a moment; operators: check that the broker can reach oidc_issuer.',
      );
    return new SignInError(
      `The identity provider's answer was refused (${step}): ${err instanceof Error ? err.message : String(err)}`,
      502,
      'Try again; operators: the broker log has the details.',
    );
  }
}

function providerRefused(error: string, description: string | null): SignInError {
  const why = description ? ` (${description.slice(0, 200)})` : '';
  switch (error) {
    case 'access_denied':
      return new SignInError(`The sign-in was cancelled or refused${why}.`, 401);
    case 'unmet_authentication_requirements':
      return new SignInError(
        `The identity provider cannot sign you in as strongly as this step needs${why}.`,
        403,
        'Your account needs a second factor; ask your administrator.',
      );
    case 'login_required':
    case 'interaction_required':
      return new SignInError(`The identity provider needs you to sign in${why}.`, 401);
    default:
      return new SignInError(
        `The identity provider refused the sign-in: ${error.slice(0, 100)}${why}.`,
        400,
        'Start again; operators: check the web client registration (redirect URI, grant types).',
      );
  }
}
