import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app-deps.js';

/**
 * The broker as an issuer of credentials, discoverable like any OpenID Provider so relying parties
 * (Kubernetes structured authentication, cloud workload identity federation, Vault's JWT auth)
 * can trust it by URL. It issues no ID tokens to browsers; the metadata lists only what those
 * verifiers read.
 */
export const wellKnownRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  const jwksUri = `${deps.publicUrl}/.well-known/jwks.json`;

  app.get('/.well-known/openid-configuration', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return {
      issuer: deps.publicUrl,
      jwks_uri: jwksUri,
      // RFC 7662 for resource servers (RFC 8414 §2 names the field); Basic client secrets, or the
      // resource server's own token from a trusted issuer as a Bearer token.
      introspection_endpoint: `${deps.publicUrl}/v1/introspect`,
      introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [
        ...new Set(deps.keys.jwks.map((k) => k.alg).filter((a): a is string => Boolean(a))),
      ],
      claims_supported: [
        'iss',
        'sub',
        'aud',
        'exp',
        'iat',
        'nbf',
        'jti',
        'role',
        'request_id',
        'sub_iss',
        'approvers',
        'act',
      ],
    };
  });

  app.get('/.well-known/jwks.json', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return { keys: deps.keys.jwks };
  });
};
