import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { LIMITS } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { HttpError } from '../errors.js';
import { OAuthError } from '../federation/errors.js';
import { CredentialTokenError, verifyCredential } from '../revocation/credential-token.js';
import { identifyRelyingParty, RelyingPartyError } from '../revocation/relying-party.js';
import { isDatabaseError } from '../store/database.js';

/**
 * `POST /v1/introspect`: OAuth 2.0 Token Introspection (RFC 7662) for resource servers that want
 * to know, per request they serve, whether a jitctl credential is still good: signed by this
 * broker, not expired, and its grant neither revoked nor ended. Anything else, an unknown or
 * malformed token included, is `{"active": false}` and nothing more (§2.2), so the answer never
 * says why. Only the configured `resource_servers` may ask (§2.1: the endpoint must authenticate
 * its callers, or anyone could use it to probe tokens); a person's sign-in is a 401.
 *
 * Its own encapsulated context, like `POST /v1/token`: a form body (§2.1) and OAuth's error
 * shape (`{"error": "invalid_client", …}`, RFC 6749 §5.2) apply to this route only.
 */
export const introspectRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.decorateRequest('relyingParty', null);
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: LIMITS.bodyBytes },
    (_req, body, done) => done(null, new URLSearchParams(body as string)),
  );

  app.setErrorHandler(async (err: FastifyError | Error, req, reply) => {
    let status: number;
    let body: { error: string; error_description: string };
    const headers: Record<string, string> = {};
    if (err instanceof RelyingPartyError) {
      status = 401;
      body = { error: 'invalid_client', error_description: err.message };
      headers['www-authenticate'] = 'Basic realm="jitctl introspection"';
    } else if (err instanceof OAuthError) {
      status = err.status;
      body = err.toBody();
      Object.assign(headers, err.headers);
    } else if (err instanceof HttpError) {
      status = err.status;
      body = {
        error:
          err.status === 429
            ? 'rate_limited'
            : err.status >= 500
              ? 'temporarily_unavailable'
              : 'invalid_request',
        error_description: err.message,
      };
      Object.assign(headers, err.headers);
    } else if (
      typeof (err as FastifyError).statusCode === 'number' &&
      (err as FastifyError).statusCode! < 500
    ) {
      status = 400;
      body = {
        error: 'invalid_request',
        error_description:
          (err as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
            ? 'send the parameters as application/x-www-form-urlencoded (RFC 7662 §2.1)'
            : err.message,
      };
    } else if (isDatabaseError(err)) {
      status = 503;
      body = {
        error: 'temporarily_unavailable',
        error_description: 'the database cannot answer right now; try again shortly',
      };
      headers['retry-after'] = '2';
    } else {
      req.log.error({ err, reqId: req.id }, 'introspection failed');
      status = 500;
      body = { error: 'server_error', error_description: `internal error (request ${req.id})` };
    }
    if (status === 401) deps.metrics.authFailures.inc({ code: body.error });
    for (const [k, v] of Object.entries(headers)) reply.header(k, v);
    reply.header('pragma', 'no-cache');
    return reply.code(status).send(body);
  });

  app.post(
    '/v1/introspect',
    {
      onRequest: async (req) => {
        const party = await identifyRelyingParty(
          {
            servers: deps.resourceServers ?? [],
            authenticator: deps.authenticator,
            federation: deps.federation,
            publicUrl: deps.publicUrl,
          },
          req.headers.authorization,
        );
        if (party.kind !== 'resource_server')
          throw new RelyingPartyError(
            "introspection is for resource servers (the broker's resource_servers setting); people read their requests with jitctl",
          );
        req.relyingParty = party;
      },
    },
    async (req, reply) => {
      reply.header('pragma', 'no-cache');
      if (!(req.body instanceof URLSearchParams))
        throw new OAuthError(
          'invalid_request',
          'send the parameters as application/x-www-form-urlencoded (RFC 7662 §2.1)',
        );
      const tokens = req.body.getAll('token');
      if (tokens.length !== 1 || tokens[0] === '')
        throw new OAuthError('invalid_request', '`token` is required, once');
      const inactive = { active: false };
      let credential: Awaited<ReturnType<typeof verifyCredential>>;
      try {
        credential = await verifyCredential(
          { keys: deps.keys, publicUrl: deps.publicUrl, now: () => deps.clock.now() },
          tokens[0]!,
          { allowExpired: false },
        );
      } catch (err) {
        if (err instanceof CredentialTokenError) return inactive;
        throw err;
      }
      const server = req.relyingParty!.kind === 'resource_server' ? req.relyingParty!.server : null;
      const aud = credential.payload.aud;
      const audiences = Array.isArray(aud) ? aud : [aud];
      // A resource server limited to its own audiences learns nothing about other systems' tokens.
      if (server?.audiences && !audiences.some((a) => a && server.audiences!.includes(a)))
        return inactive;
      const row = await deps.service.peek(credential.requestId);
      const now = deps.clock.now();
      if (row?.state !== 'approved' || row.expires_at <= now) return inactive;
      const p = credential.payload;
      return {
        active: true,
        token_type: 'Bearer',
        iss: p.iss,
        sub: p.sub,
        aud: p.aud,
        exp: p.exp,
        iat: p.iat,
        nbf: p.nbf,
        jti: p.jti,
        role: p.role,
        request_id: p.request_id,
        sub_iss: p.sub_iss,
        approvers: p.approvers,
        ...(p.act ? { act: p.act } : {}),
      };
    },
  );
};
