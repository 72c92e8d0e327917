import type { ConfigResponse } from '../api/schemas.js';
import type { Context } from '../cli/context.js';
import { JitError } from '../cli/errors.js';
import { safe } from '../cli/output.js';
import type { BrokerClient } from '../client/broker-client.js';
import type { IdpSettings } from './oidc.js';

/**
 * Runs `use` with an unauthenticated client of the broker at `server` (GET /v1/config, the token
 * exchange), and closes the client however `use` ends.
 */
export async function withAnonymousClient<T>(
  ctx: Context,
  server: string,
  use: (client: BrokerClient) => Promise<T>,
): Promise<T> {
  const { BrokerClient } = await import('../client/broker-client.js');
  const client = new BrokerClient({
    server,
    clock: ctx.clock,
    signal: ctx.interruptSignal(),
    attempts: 3,
    ...(ctx.debug ? { debug: (line: string) => ctx.io.err(`debug: ${line}\n`) } : {}),
  });
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

/**
 * Where to sign in for a broker: its `GET /v1/config` (docs/api.md). The broker, not the
 * user's config, names the identity provider, so a CLI never needs IdP settings of its own.
 */
export async function fetchIdpSettings(ctx: Context, server: string): Promise<IdpSettings> {
  const config = await withAnonymousClient(ctx, server, (client) => client.config());
  return parseIdpSettings(config, server);
}

function parseIdpSettings(config: unknown, server: string): IdpSettings {
  const c = config as Partial<ConfigResponse> | null | undefined;
  const bad = (what: string) =>
    new JitError(`the broker at ${server} sent a /v1/config without ${what}`, 1, {
      hint: 'is this a jitctl broker? check --server',
    });
  if (!c || typeof c !== 'object') throw bad('a JSON object');
  if (typeof c.issuer !== 'string') throw bad('an issuer');
  try {
    new URL(c.issuer);
  } catch {
    throw new JitError(
      `the broker at ${server} names an issuer that is not a URL: ${safe(c.issuer)}`,
    );
  }
  if (typeof c.client_id !== 'string' || c.client_id === '') throw bad('a client_id');
  if (!Array.isArray(c.scopes) || !c.scopes.every((s) => typeof s === 'string'))
    throw bad('scopes');
  return {
    issuer: c.issuer,
    clientId: c.client_id,
    scopes: c.scopes,
    deviceFlow: c.device_flow !== false,
    signInAcrValues:
      typeof c.sign_in_acr_values === 'string'
        ? c.sign_in_acr_values.split(/\s+/).filter(Boolean)
        : [],
  };
}
