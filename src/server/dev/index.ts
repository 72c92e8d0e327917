import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The development identity provider of `jitctl server --dev` (oidc-provider), mounted by the
 * broker under `/idp` on its own port. Never loaded unless --dev is given.
 */
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
  /** The broker sends every request under `/idp` (including `/idp` itself) here. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  users: DevUser[];
  close(): Promise<void>;
}

export interface DevIdentityProviderOptions {
  /** The broker's base URL, e.g. http://127.0.0.1:8787 */
  baseUrl: string;
  /** Where the provider keeps its signing keys between runs. */
  dataDir: string;
}

export async function createDevIdentityProvider(
  _opts: DevIdentityProviderOptions,
): Promise<DevIdentityProvider> {
  throw new Error('the development identity provider is not built yet');
}

/** The demo policy of --dev (YAML): prod-deploy, db-read, staging-admin. */
export const DEMO_POLICY = '';
