import type { FastifyPluginAsync } from 'fastify';
import { ErrorCode } from '../../api/errors.js';
import { GrantStatus } from '../../api/grant.js';
import { MAX_WAIT_MS } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { durationOf, HttpError, notFound } from '../errors.js';
import {
  CredentialTokenError,
  type VerifiedCredential,
  verifyCredential,
} from '../revocation/credential-token.js';
import { grantEtag, grantStatus } from '../revocation/grant-status.js';
import { longPoll } from '../revocation/long-poll.js';
import { queryOf } from './input.js';
import { parseIfNoneMatch } from './requests.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The credential presented at `GET /v1/credential/status`, verified (rate limits key on it). */
    grantHolder: VerifiedCredential | null;
  }
}

/**
 * `GET /v1/credential/status` with `Authorization: Bearer <credential>`: the grant a credential
 * belongs to, for the CLI that holds it. `jitctl exec`, `shell` and `credential` ask before they
 * hand a stored credential over, and a running `exec`/`shell` follows the grant with `?wait=`
 * (the same long poll as `GET /v1/requests/:id`), so a revocation reaches it within moments.
 *
 * The credential proves the holder, not a sign-in: it works without a session (a pipeline's may
 * have lapsed, an identity provider may be down) and answers only about its own grant. An expired
 * credential of a grant that lasts longer still answers (the role's `credential.ttl` is shorter
 * than its window); one that does not verify is a 401 and counts against the failed sign-ins.
 */
export const credentialStatusRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (
  app,
  { deps },
) => {
  app.decorateRequest('grantHolder', null);

  const refuse = (why: string) =>
    new HttpError(
      401,
      ErrorCode.Unauthenticated,
      `not a credential of this broker: ${why}`,
      'request the role again: jitctl request <role>',
      { 'www-authenticate': 'Bearer realm="jitctl-credential"' },
    );

  app.get(
    '/v1/credential/status',
    {
      onRequest: async (req) => {
        const token = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
        if (!token) throw refuse('send it as Authorization: Bearer <credential>');
        try {
          req.grantHolder = await verifyCredential(
            { keys: deps.keys, publicUrl: deps.publicUrl, now: () => deps.clock.now() },
            token,
            { allowExpired: true },
          );
        } catch (err) {
          if (err instanceof CredentialTokenError) throw refuse(err.message);
          throw err;
        }
      },
      schema: { response: { 200: GrantStatus } },
    },
    async (req, reply) => {
      const q = queryOf(req, ['wait']);
      const waitMs =
        q.wait === undefined
          ? undefined
          : Math.min(durationOf('wait', q.wait, 'e.g. wait=30s (at most 60s)'), MAX_WAIT_MS);
      const id = req.grantHolder!.requestId;
      const found = await deps.service.peek(id);
      if (!found) throw notFound(`the broker has no request ${id}`, 'request the role again');
      let row = found;
      if (waitMs !== undefined) {
        const ifNoneMatch = parseIfNoneMatch(req.headers['if-none-match']);
        const first = grantEtag(row);
        const unchanged = (etag: string) =>
          ifNoneMatch ? ifNoneMatch.includes(etag) || ifNoneMatch.includes('*') : etag === first;
        if (unchanged(first)) {
          const answer = await longPoll({
            hub: deps.hub,
            clock: deps.clock,
            key: id,
            waitMs,
            reply,
            async changed() {
              row = (await deps.service.peek(id)) ?? row;
              return !unchanged(grantEtag(row));
            },
            deadline: () => (row.state === 'approved' ? row.expires_at : null),
          });
          if (!answer) return reply;
        }
      }
      const current = row;
      const status = await grantStatus(
        deps.db,
        current,
        deps.service.policy.roles.get(current.role),
        deps.clock.now(),
      );
      return reply.header('etag', grantEtag(current)).send(status);
    },
  );
};
