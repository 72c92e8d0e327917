import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { LIMITS, type TokenExchangeResponse } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { OAuthError } from '../federation/index.js';

/**
 * `POST /v1/token`: RFC 8693 token exchange, the door pipelines sign in through. A form
 * (RFC 8693 §2.1, `application/x-www-form-urlencoded`), answered as RFC 8693 §2.2 on success and
 * RFC 6749 §5.2 (`{"error", "error_description"}`) on failure: the shapes OAuth tooling expects
 * here, unlike the rest of the API. A bad token is a 400 that says which check failed, never a
 * 5xx and never an echo of the token; only an unreachable issuer or database is a 503.
 *
 * This plugin is its own encapsulated context: the form parser and the OAuth error handler
 * apply to this route only, so every other endpoint keeps refusing forms with 415.
 */

export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const SUBJECT_TOKEN_TYPES = [TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN];
const REQUESTED_TOKEN_TYPES = [TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT];

const invalidRequest = (why: string) => new OAuthError('invalid_request', why);

/** Each parameter at most once (RFC 6749 §3.2); unknown ones are ignored, as it requires. */
function single(form: URLSearchParams, name: string): string | undefined {
  const all = form.getAll(name);
  if (all.length > 1) throw invalidRequest(`\`${name}\` is given more than once`);
  const v = all[0];
  return v === undefined || v === '' ? undefined : v;
}

function required(form: URLSearchParams, name: string): string {
  const v = single(form, name);
  if (v === undefined) throw invalidRequest(`\`${name}\` is required`);
  return v;
}

export const tokenRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: LIMITS.bodyBytes },
    (_req, body, done) => done(null, new URLSearchParams(body as string)),
  );

  app.setErrorHandler(async (err: FastifyError | OAuthError, req, reply) => {
    let e: OAuthError;
    if (err instanceof OAuthError) e = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      e = new OAuthError(
        'invalid_request',
        `the body is larger than ${LIMITS.bodyBytes / 1024} KiB`,
        413,
      );
    else if (
      err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
      err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
    )
      e = invalidRequest(
        'send the parameters as application/x-www-form-urlencoded (RFC 8693 §2.1)',
      );
    else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500)
      e = invalidRequest(err.message);
    else {
      req.log.error({ err, reqId: req.id }, 'token exchange failed');
      e = new OAuthError('server_error', `internal error (request ${req.id})`);
    }
    // A rate limit's 429 is counted in jitctl_rate_limited_total, not as a refused token.
    if (e.status < 500 && e.status !== 429) {
      deps.metrics.authFailures.inc({ code: e.error });
      req.log.info(
        { exchange: 'refused', error: e.error, why: e.description },
        'token exchange refused',
      );
    }
    for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
    reply.header('pragma', 'no-cache');
    return reply.code(e.status).send(e.toBody());
  });

  app.post('/v1/token', async (req, reply) => {
    if (!(req.body instanceof URLSearchParams))
      throw invalidRequest(
        'send the parameters as application/x-www-form-urlencoded (RFC 8693 §2.1)',
      );
    const form = req.body;
    const grantType = required(form, 'grant_type');
    if (grantType !== GRANT_TYPE) {
      throw new OAuthError(
        'unsupported_grant_type',
        `grant_type must be ${GRANT_TYPE} (this endpoint only exchanges tokens)`,
      );
    }
    const subjectToken = required(form, 'subject_token');
    const subjectTokenType = required(form, 'subject_token_type');
    if (!SUBJECT_TOKEN_TYPES.includes(subjectTokenType))
      throw invalidRequest(
        `subject_token_type ${JSON.stringify(subjectTokenType.slice(0, 100))} is not supported; send ${TOKEN_TYPE_JWT}`,
      );
    if (single(form, 'actor_token') !== undefined || single(form, 'actor_token_type') !== undefined)
      throw invalidRequest(
        'delegation (actor_token) is not supported: send the subject_token alone',
      );
    const requested = single(form, 'requested_token_type');
    if (requested !== undefined && !REQUESTED_TOKEN_TYPES.includes(requested))
      throw invalidRequest(
        `requested_token_type ${JSON.stringify(requested.slice(0, 100))} is not issued here; ask for ${TOKEN_TYPE_ACCESS_TOKEN}`,
      );
    for (const name of ['audience', 'resource']) {
      const target = single(form, name);
      if (target !== undefined && target !== deps.publicUrl)
        throw new OAuthError(
          'invalid_target',
          `this broker issues sessions for itself only: ${name} must be the broker's public URL, or left out`,
        );
    }
    if (single(form, 'scope') !== undefined)
      throw new OAuthError(
        'invalid_scope',
        "scopes are not used: a pipeline's groups come from the broker's trusted_issuers entry",
      );

    const session = await deps.federation.exchange(subjectToken, req.log);
    reply.header('pragma', 'no-cache');
    const answer: TokenExchangeResponse = {
      access_token: session.token,
      issued_token_type: requested === TOKEN_TYPE_JWT ? TOKEN_TYPE_JWT : TOKEN_TYPE_ACCESS_TOKEN,
      token_type: 'Bearer',
      expires_in: session.expiresIn,
    };
    return answer;
  });
};
