import type { FastifyPluginAsync } from 'fastify';
import { ConfigResponse } from '../../api/schemas.js';
import { VERSION } from '../../api/version.js';
import type { AppDeps } from '../app-deps.js';

/**
 * `GET /v1/config`: how to sign in, for a CLI that knows only the broker's URL. `device_flow`
 * comes from the identity provider's own discovery document, so the CLI never offers a flow the
 * provider cannot do. `sign_in_acr_values` lets that one sign-in be as strong as the roles people
 * request need, so that a first request right after `jitctl login` asks for no second sign-in.
 */
export const configRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/v1/config', { schema: { response: { 200: ConfigResponse } } }, async () => {
    const metadata = await deps.oidc.metadata();
    const acr = deps.service.signInAcrValues();
    return {
      issuer: deps.oidc.issuer,
      client_id: deps.oidc.clientId,
      scopes: deps.oidc.scopes,
      device_flow: typeof metadata.device_authorization_endpoint === 'string',
      version: VERSION,
      ...(acr ? { sign_in_acr_values: acr } : {}),
    };
  });
};
