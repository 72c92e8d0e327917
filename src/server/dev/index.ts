import type { DevIdentityProvider, DevIdentityProviderOptions } from './types.js';

/**
 * The development identity provider of `jitctl server --dev` (oidc-provider), mounted by the
 * broker under `/idp` on its own port. Never loaded unless --dev is given; oidc-provider itself
 * (about 200 ms to import) loads only inside {@link createDevIdentityProvider}.
 *
 * What it offers (docs/login.md): the demo users below, each with a password and a TOTP second
 * factor; one public native client `jitctl` with the device authorization grant (RFC 8628, with
 * an `interval` and `slow_down`), authorization code + PKCE S256 with loopback redirects on any
 * port (RFC 8252 §7.3) and refresh tokens; one confidential web client `jitctl-web` for the
 * broker's review pages (code + PKCE, redirect `<broker>/ui/auth/callback`); ID tokens (RS256) carrying `acr` ("pwd" or "mfa"),
 * `amr`, `auth_time`, `sid`, `email`, `name` and `groups`; the claims parameter for step-up.
 */
export type {
  DevIdentityProvider,
  DevIdentityProviderOptions,
  DevIdpEvent,
  DevUser,
} from './types.js';

export async function createDevIdentityProvider(
  opts: DevIdentityProviderOptions,
): Promise<DevIdentityProvider> {
  const { buildProvider } = await import('./provider.js');
  return buildProvider(opts);
}

export { DEMO_POLICY } from './demo-policy.js';
/** The acr values the provider emits, weakest first: the broker's `acr_levels` for --dev. */
export { ACR_LEVELS } from './interactions.js';
export { checkTotp, currentTotp, DEV_USERS, totpUri } from './users.js';
