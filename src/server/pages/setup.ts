import { isLoopbackHost } from '../../api/loopback.js';
import { Secret } from '../../api/secret.js';
import { AuditChainWatch } from '../audit/chain-watch.js';
import { OidcVerifier } from '../auth/oidc-verifier.js';
import type { ServerClock } from '../clock.js';
import { UI_CALLBACK_PATH, type UiSettings } from '../config.js';
import type { Caller } from '../policy/types.js';
import type { RequestService } from '../requests/service.js';
import type { Db } from '../store/database.js';
import type { PagesDeps } from './context.js';
import { pageKey } from './keys.js';
import { SessionStore } from './sessions.js';
import { type WebClient, WebSignIn } from './sign-in.js';

/**
 * Assembles the review pages for the broker (src/server/start.ts): which web client signs people
 * in (the configured `ui_*` settings, or the one `--dev` registered), a verifier for its ID
 * tokens (the API's OidcVerifier with the web client as audience), the shared keys, the session
 * store and the audit chain watch. Without a client the pages still answer, saying what to set.
 */
export interface PagesSetup {
  db: Db;
  clock: ServerClock;
  service: RequestService;
  publicUrl: string;
  ui: UiSettings;
  oidc: { issuer: string; scopes: string[] };
  /** `--dev`: the web client its identity provider registered. */
  devWebClient: { clientId: string; clientSecret: string; redirectUri: string } | undefined;
  groupsClaim: string;
  isOwnKid: (kid: string) => boolean;
  auditors: string[];
  jwksCooldownMs?: number | undefined;
  onSignedIn?: ((caller: Caller) => void) | undefined;
}

export async function setupPages(o: PagesSetup): Promise<PagesDeps> {
  const url = new URL(o.publicUrl);
  const loopbackHttp = url.protocol === 'http:' && isLoopbackHost(url.hostname);
  const secure = !loopbackHttp;
  const unavailable: string[] = [];
  let client: WebClient | undefined;
  // Scopes as the CLI asks, without offline_access: a browser session gets no refresh token.
  const scopes = o.oidc.scopes.filter((s) => s !== 'offline_access');
  if (o.devWebClient) {
    client = {
      issuer: o.oidc.issuer,
      clientId: o.devWebClient.clientId,
      clientSecret: new Secret(o.devWebClient.clientSecret),
      redirectUri: o.devWebClient.redirectUri,
      scopes,
    };
  } else if (o.ui.clientId) {
    client = {
      issuer: o.oidc.issuer,
      clientId: o.ui.clientId,
      clientSecret: o.ui.clientSecret,
      redirectUri: o.ui.redirectUri ?? `${o.publicUrl.replace(/\/+$/, '')}${UI_CALLBACK_PATH}`,
      scopes,
    };
  } else {
    unavailable.push(
      'This broker has no web client at its identity provider, so nobody can sign in here yet. ' +
        'Reviews still work from a terminal: `jitctl approve <id>`.',
      'Operators: register the broker as a web client (authorization code with PKCE, redirect URI ' +
        `${o.publicUrl.replace(/\/+$/, '')}${UI_CALLBACK_PATH}) and set ui_client_id and ` +
        'ui_client_secret; docs/operations.md, "The review pages", has the steps.',
    );
  }
  if (client && url.protocol === 'http:' && !loopbackHttp) {
    unavailable.push(
      `The review pages need https: public_url is ${o.publicUrl}, and their cookies are sent over https only. ` +
        'Operators: serve the broker over https (or through a TLS proxy) and set public_url to that address.',
    );
    client = undefined;
  }
  const signIn = client
    ? new WebSignIn({
        client,
        verifier: new OidcVerifier({
          issuer: o.oidc.issuer,
          audiences: [client.clientId],
          groupsClaim: o.groupsClaim,
          clock: o.clock,
          isOwnKid: o.isOwnKid,
          ...(o.jwksCooldownMs !== undefined ? { jwksCooldownMs: o.jwksCooldownMs } : {}),
        }),
        key: await pageKey(o.db, 'sign-in', o.clock),
        clock: o.clock,
      })
    : undefined;
  // In the background: the CSP of a replica that has not signed anyone in yet must already
  // allow a step-up's redirect to the provider's authorization endpoint.
  signIn?.prepare();
  return {
    service: o.service,
    db: o.db,
    clock: o.clock,
    publicUrl: o.publicUrl,
    signIn,
    unavailable,
    sessions: new SessionStore(o.db, o.clock, o.ui.sessionTtlMs),
    chain: new AuditChainWatch(o.db, o.clock),
    csrfKey: await pageKey(o.db, 'csrf', o.clock),
    secure,
    auditors: o.auditors,
    onSignedIn: o.onSignedIn,
  };
}
