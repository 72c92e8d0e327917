import type { IncomingMessage, ServerResponse } from 'node:http';

/** The development identity provider's types, apart from index.ts so its modules can share them without importing each other in a ring. */

export interface DevUser {
  username: string;
  password: string;
  /** Base32 TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s): fixed so demos and tests can compute codes. */
  totpSecret: string;
  name: string;
  email: string;
  groups: string[];
}

export interface DevIdentityProvider {
  /** `${baseUrl}/idp` */
  issuer: string;
  /** The CLI's client id at this provider. */
  clientId: string;
  /** Scopes the CLI should ask for (served by the broker's GET /v1/config). */
  scopes: string[];
  /**
   * The broker's review pages as a registered web client (authorization code + PKCE, a secret
   * made at start, the redirect URI `<broker>/ui/auth/callback`).
   */
  webClient: { clientId: string; clientSecret: string; redirectUri: string };
  /**
   * The broker sends every request under `/idp` (including `/idp` itself) here, with `req.url`
   * unchanged (still starting with `/idp`) and the body unread (or already parsed onto
   * `req.body`, which oidc-provider also accepts).
   */
  handle(req: IncomingMessage, res: ServerResponse): void;
  users: DevUser[];
  close(): Promise<void>;
}

/** What happened at the provider, for the broker's log and for tests; never carries a secret. */
export type DevIdpEvent =
  | {
      type: 'sign_in';
      outcome: 'success' | 'failure' | 'cancelled';
      username: string;
      acr?: string;
      reason?: string;
    }
  | { type: 'device_authorization' }
  | { type: 'device_poll'; outcome: 'authorization_pending' | 'slow_down' }
  | { type: 'token'; grantType: string }
  | { type: 'token_error'; grantType: string; error: string }
  /** A grant ended: its refresh token was revoked (logout) or replayed. */
  | { type: 'grant_revoked' }
  | { type: 'server_error'; message: string };

export interface DevIdentityProviderOptions {
  /** The broker's base URL, e.g. http://127.0.0.1:8787 */
  baseUrl: string;
  /** Where the provider keeps its signing keys between runs. */
  dataDir: string;
  /**
   * Start even when `baseUrl` is not a loopback address. The demo users' passwords are public,
   * so this is refused unless asked for explicitly.
   */
  allowNonLoopback?: boolean;
  /** RFC 8628 `interval` in seconds (default 2, or JITCTL_DEV_IDP_INTERVAL). */
  devicePollInterval?: number;
  /**
   * Polls of one device code closer together than this many seconds answer `slow_down`
   * (default: the interval, or JITCTL_DEV_IDP_MIN_INTERVAL). Setting it above the interval
   * makes the provider throttle like a loaded production one, which tests use.
   */
  deviceMinimumInterval?: number;
  /**
   * Lifetimes in seconds. Defaults: device code 600 (JITCTL_DEV_IDP_DEVICE_CODE_TTL), ID token
   * 900 (JITCTL_DEV_IDP_ID_TOKEN_TTL), access token 900, refresh token and session 14 days.
   */
  ttl?: {
    deviceCode?: number;
    idToken?: number;
    accessToken?: number;
    refreshToken?: number;
    session?: number;
  };
  /** Replaces the demo users (tests). */
  users?: readonly DevUser[];
  /** Receives sign-ins, token grants and errors (the broker logs them). */
  onEvent?: (event: DevIdpEvent) => void;
  /** Where JITCTL_DEV_IDP_* settings are read from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}
