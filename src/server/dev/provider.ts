import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { type KoaContextLike } from 'oidc-provider';
import { isLoopbackHost } from '../../api/loopback.js';
import { ACR_LEVELS, handleInteraction } from './interactions.js';
import { loadOrCreateKeys } from './keys.js';
import {
  deviceConfirmPage,
  deviceInputPage,
  deviceSuccessPage,
  errorPage,
  logoutPage,
  messagePage,
  PAGE_HEADERS,
} from './pages.js';
import { createStateStore } from './state-adapter.js';
import type {
  DevIdentityProvider,
  DevIdentityProviderOptions,
  DevIdpEvent,
  DevUser,
} from './types.js';
import { DEV_USERS } from './users.js';

/**
 * The development identity provider built on oidc-provider 8 (a certified OpenID Provider).
 * Mounted by the broker under `/idp`, so issuer and every endpoint are `${baseUrl}/idp/…`.
 */

export const CLIENT_ID = 'jitctl';
export const CLIENT_NAME = 'jitctl CLI';
export const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups'];
/** The broker's review pages (`/ui/`), registered as a confidential web client. */
export const WEB_CLIENT_ID = 'jitctl-web';
export const WEB_CLIENT_NAME = 'jitctl review pages';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface ResolvedSettings {
  /** RFC 8628 §3.2 `interval` (seconds) told to clients. */
  interval: number;
  /** Polls of one device code closer than this (seconds) answer `slow_down` (RFC 8628 §3.5). */
  minimumInterval: number;
  ttl: {
    deviceCode: number;
    idToken: number;
    accessToken: number;
    refreshToken: number;
    session: number;
  };
}

function positiveSeconds(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 30 * 86_400) {
    throw new Error(
      `${name} must be a whole number of seconds between 1 and 2592000, not ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Options first, then JITCTL_DEV_IDP_* variables (tests shorten lifetimes of a spawned broker). */
export function resolveSettings(opts: DevIdentityProviderOptions): ResolvedSettings {
  const env = opts.env ?? process.env;
  const interval =
    positiveSeconds(opts.devicePollInterval, 'devicePollInterval') ??
    positiveSeconds(env.JITCTL_DEV_IDP_INTERVAL, 'JITCTL_DEV_IDP_INTERVAL') ??
    2;
  const minimumInterval =
    positiveSeconds(opts.deviceMinimumInterval, 'deviceMinimumInterval') ??
    positiveSeconds(env.JITCTL_DEV_IDP_MIN_INTERVAL, 'JITCTL_DEV_IDP_MIN_INTERVAL') ??
    interval;
  const ttl = opts.ttl ?? {};
  return {
    interval,
    minimumInterval,
    ttl: {
      deviceCode:
        positiveSeconds(ttl.deviceCode, 'ttl.deviceCode') ??
        positiveSeconds(env.JITCTL_DEV_IDP_DEVICE_CODE_TTL, 'JITCTL_DEV_IDP_DEVICE_CODE_TTL') ??
        600,
      idToken:
        positiveSeconds(ttl.idToken, 'ttl.idToken') ??
        positiveSeconds(env.JITCTL_DEV_IDP_ID_TOKEN_TTL, 'JITCTL_DEV_IDP_ID_TOKEN_TTL') ??
        900,
      accessToken: positiveSeconds(ttl.accessToken, 'ttl.accessToken') ?? 900,
      refreshToken: positiveSeconds(ttl.refreshToken, 'ttl.refreshToken') ?? 14 * 86_400,
      session: positiveSeconds(ttl.session, 'ttl.session') ?? 14 * 86_400,
    },
  };
}

/** The issuer for a broker base URL; refuses non-loopback addresses unless allowed. */
export function issuerFor(baseUrl: string, allowNonLoopback = false): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new Error(
      `the development identity provider needs the broker's URL, not ${JSON.stringify(baseUrl)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`the development identity provider needs an http(s) URL, not ${baseUrl}`);
  }
  if (!isLoopbackHost(url.hostname) && !allowNonLoopback) {
    throw new Error(
      `refusing to start the development identity provider on ${url.host}: its users and passwords are public, ` +
        'so it only listens on loopback addresses (127.0.0.1, ::1, localhost). ' +
        'Use a real identity provider (--oidc-issuer) for anything reachable by others.',
    );
  }
  url.search = '';
  url.hash = '';
  return `${url.href.replace(/\/+$/, '')}/idp`;
}

interface PollState {
  last: number;
  minimumMs: number;
  expiresAt: number;
}

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

export async function buildProvider(
  opts: DevIdentityProviderOptions,
): Promise<DevIdentityProvider> {
  const issuer = issuerFor(opts.baseUrl, opts.allowNonLoopback ?? false);
  const prefix = new URL(issuer).pathname;
  const settings = resolveSettings(opts);
  const keys = await loadOrCreateKeys(opts.dataDir);
  const users: DevUser[] = (opts.users ?? DEV_USERS).map((u) => ({ ...u, groups: [...u.groups] }));
  const byName = new Map(users.map((u) => [u.username, u]));
  const emit = (e: DevIdpEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {
      // an observer's bug must not break sign-in
    }
  };

  const state = createStateStore(opts.dataDir);
  // The review pages' client: its secret lives only in this process (the broker and its
  // provider start and stop together), and its one redirect URI is the broker's callback.
  const webClient = {
    clientId: WEB_CLIENT_ID,
    clientSecret: randomBytes(32).toString('base64url'),
    redirectUri: `${issuer.slice(0, -'/idp'.length)}/ui/auth/callback`,
  };

  const provider = new Provider(issuer, {
    adapter: state.Adapter,
    clients: [
      {
        client_id: CLIENT_ID,
        client_name: CLIENT_NAME,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_GRANT, 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        // RFC 8252 §7.3: for native clients oidc-provider accepts any port on a loopback
        // redirect URI registered without one.
        redirect_uris: ['http://127.0.0.1/callback'],
        require_auth_time: true,
        id_token_signed_response_alg: 'RS256',
      },
      {
        client_id: webClient.clientId,
        client_name: WEB_CLIENT_NAME,
        client_secret: webClient.clientSecret,
        application_type: 'web',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [webClient.redirectUri],
        require_auth_time: true,
        id_token_signed_response_alg: 'RS256',
      },
    ],
    jwks: keys.jwks,
    cookies: {
      keys: keys.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    acrValues: [...ACR_LEVELS],
    // Overriding `claims` drops oidc-provider's defaults, so acr, amr, auth_time and sid are
    // listed again; acr, amr and sid are only emitted when a scope maps them, hence `openid`.
    claims: {
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
      iss: null,
      openid: ['sub', 'acr', 'amr', 'auth_time', 'sid'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: SCOPES,
    // The broker reads groups from the ID token, which is what the CLI sends it: the ID token
    // carries the scoped claims even when an access token is issued too.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      deviceFlow: {
        enabled: true,
        async userCodeInputSource(
          ctx: KoaContextLike,
          form: string,
          out: { error_description?: string } | undefined,
          err: { name?: string; userCode?: string } | undefined,
        ) {
          let message: string | undefined;
          if (err && (err.userCode || err.name === 'NoCodeError')) {
            message = 'That code is not valid. Check it and try again.';
          } else if (err?.name === 'AbortedError' || err?.name === 'AccessDenied') {
            message = 'Sign-in cancelled. You can close this page.';
          } else if (err?.name === 'ExpiredError') {
            message = 'That code has expired. Run the command again for a new one.';
          } else if (err?.name === 'AlreadyUsedError') {
            message = 'That code was used already.';
          } else if (err) {
            message = out?.error_description ?? 'Something went wrong with that code.';
          }
          ctx.type = 'html';
          ctx.body = deviceInputPage(form, message);
          setPageHeaders(ctx);
        },
        async userCodeConfirmSource(
          ctx: KoaContextLike,
          form: string,
          client: { clientName?: string; clientId: string },
          _deviceInfo: unknown,
          userCode: string,
        ) {
          ctx.type = 'html';
          ctx.body = deviceConfirmPage(form, client.clientName ?? client.clientId, userCode);
          setPageHeaders(ctx);
        },
        async successSource(ctx: KoaContextLike) {
          ctx.type = 'html';
          ctx.body = deviceSuccessPage(ctx.oidc?.client?.clientName ?? CLIENT_NAME);
          setPageHeaders(ctx);
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx: KoaContextLike, form: string) {
          ctx.type = 'html';
          ctx.body = logoutPage(form, new URL(issuer).host);
          setPageHeaders(ctx);
        },
        async postLogoutSuccessSource(ctx: KoaContextLike) {
          ctx.type = 'html';
          ctx.body = messagePage(
            'Signed out',
            'You are signed out of the development identity provider.',
          );
          setPageHeaders(ctx);
        },
      },
    },
    pkce: { required: () => true, methods: ['S256'] },
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) =>
        `${prefix}/interaction/${interaction.uid}`,
    },
    async renderError(ctx: KoaContextLike, out: Record<string, unknown>) {
      ctx.type = 'html';
      ctx.body = errorPage(out);
      setPageHeaders(ctx);
    },
    async findAccount(_ctx: unknown, id: string) {
      const user = byName.get(id);
      if (!user) return undefined;
      return {
        accountId: user.username,
        async claims() {
          return {
            sub: user.username,
            name: user.name,
            preferred_username: user.username,
            email: user.email,
            email_verified: true,
            groups: [...user.groups],
          };
        },
      };
    },
    // The CLI is the broker's own client: it always gets a refresh token (no offline_access
    // consent dance, RFC 6749 §1.5), one that outlives the browser session it came from.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    // First-party client: everything it asks for is granted without a consent page (docs/login.md).
    async loadExistingGrant(ctx: {
      oidc: {
        client: { clientId: string };
        session: { accountId?: string; grantIdFor(clientId: string): string | undefined };
        result?: { consent?: { grantId?: string } };
        requestParamOIDCScopes: Set<string>;
        requestParamClaims: Set<string>;
        provider: Provider;
      };
    }) {
      const { oidc } = ctx;
      const accountId = oidc.session.accountId;
      if (!accountId) return undefined;
      const grantId =
        oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
      const found = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      const grant = found ?? new oidc.provider.Grant({ accountId, clientId: oidc.client.clientId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      if (oidc.requestParamClaims.size > 0) grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    ttl: {
      DeviceCode: settings.ttl.deviceCode,
      IdToken: settings.ttl.idToken,
      AccessToken: settings.ttl.accessToken,
      RefreshToken: settings.ttl.refreshToken,
      Session: settings.ttl.session,
      Grant: settings.ttl.refreshToken,
      Interaction: 600,
      AuthorizationCode: 60,
    },
  });
  provider.proxy = false;

  const polls = new Map<string, PollState>();
  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;
    const body = ctx.body as Record<string, unknown> | undefined;
    const now = Date.now();
    if (
      route === 'device_authorization' &&
      ctx.status === 200 &&
      body &&
      typeof body.device_code === 'string'
    ) {
      // oidc-provider omits RFC 8628 §3.2's `interval`; clients then default to 5 s.
      body.interval = settings.interval;
      for (const [k, v] of polls) if (v.expiresAt < now) polls.delete(k);
      polls.set(digest(body.device_code), {
        last: now,
        minimumMs: settings.minimumInterval * 1000,
        expiresAt: now + settings.ttl.deviceCode * 1000,
      });
      emit({ type: 'device_authorization' });
      return;
    }
    if (
      route === 'token' &&
      ctx.oidc?.params?.grant_type === DEVICE_GRANT &&
      body?.error === 'authorization_pending'
    ) {
      const code = ctx.oidc.params.device_code;
      const state = typeof code === 'string' ? polls.get(digest(code)) : undefined;
      if (!state) return;
      // RFC 8628 §3.5: a client that polls faster than allowed gets slow_down and must add 5 s
      // to its interval for this and every later request. The provider's own floor stays put (a
      // client that obeys is never punished twice); a quarter second of slack absorbs jitter.
      const early = now - state.last < state.minimumMs - 250;
      state.last = now;
      if (early) {
        ctx.body = {
          error: 'slow_down',
          error_description: 'polling too fast: wait longer between requests',
        };
        emit({ type: 'device_poll', outcome: 'slow_down' });
      } else {
        emit({ type: 'device_poll', outcome: 'authorization_pending' });
      }
    }
  });

  provider.on('grant.success', (ctx: KoaContextLike) => {
    const grantType = ctx.oidc?.params?.grant_type;
    emit({ type: 'token', grantType: typeof grantType === 'string' ? grantType : 'unknown' });
  });
  provider.on('grant.error', (ctx: KoaContextLike, err: Error & { error?: string }) => {
    const grantType = ctx.oidc?.params?.grant_type;
    if (err.error === 'authorization_pending' || err.error === 'slow_down') return;
    emit({
      type: 'token_error',
      grantType: typeof grantType === 'string' ? grantType : 'unknown',
      error: err.error ?? err.name,
    });
  });
  provider.on('server_error', (_ctx: unknown, err: Error) => {
    emit({ type: 'server_error', message: err.message });
  });
  // A refresh token revoked (RFC 7009, `jitctl logout`) or replayed ends its whole grant.
  provider.on('grant.revoked', () => emit({ type: 'grant_revoked' }));

  const callback = provider.callback();
  const interactionDeps = {
    provider,
    users,
    clientName: CLIENT_NAME,
    clientNames: { [CLIENT_ID]: CLIENT_NAME, [WEB_CLIENT_ID]: WEB_CLIENT_NAME },
    prefix,
    onSignIn: (e: {
      outcome: 'success' | 'failure' | 'cancelled';
      username: string;
      acr?: string;
      reason?: string;
    }) => emit({ type: 'sign_in', ...e }),
  };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const original = req.url ?? '/';
    const inside =
      original === prefix || original.startsWith(`${prefix}/`) || original.startsWith(`${prefix}?`);
    if (!inside) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    const tail = original.slice(prefix.length);
    const rest = tail.startsWith('/') ? tail : `/${tail}`;
    const path = rest.split('?')[0] ?? '/';
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      const body = messagePage(
        'Development identity provider',
        `Issuer ${issuer}: discovery at ${issuer}/.well-known/openid-configuration, sign out at ${issuer}/session/end.`,
      );
      res.writeHead(200, { ...PAGE_HEADERS, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    // oidc-provider computes its mount path from originalUrl (as behind Express's app.use).
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = original;
    req.url = rest;
    if (path.startsWith('/interaction/')) {
      handleInteraction(interactionDeps, req, res, path).then(
        (handled) => {
          if (!handled) callback(req, res);
        },
        (err: unknown) => {
          emit({ type: 'server_error', message: err instanceof Error ? err.message : String(err) });
          if (!res.headersSent) {
            const body = errorPage({
              error: 'server_error',
              error_description: 'the sign-in step failed',
            });
            res.writeHead(500, { ...PAGE_HEADERS, 'content-length': Buffer.byteLength(body) });
            res.end(body);
          } else {
            res.destroy();
          }
        },
      );
      return;
    }
    callback(req, res);
  }

  return {
    issuer,
    clientId: CLIENT_ID,
    scopes: [...SCOPES],
    webClient,
    handle,
    users,
    async close() {
      polls.clear();
      await state.flush();
    },
  };
}

function setPageHeaders(ctx: KoaContextLike): void {
  for (const [k, v] of Object.entries(PAGE_HEADERS)) if (k !== 'content-type') ctx.set(k, v);
}
