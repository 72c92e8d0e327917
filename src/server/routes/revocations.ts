import type { FastifyPluginAsync } from 'fastify';
import { ErrorCode } from '../../api/errors.js';
import { MAX_WAIT_MS, RevocationsResponse } from '../../api/schemas.js';
import type { AppDeps } from '../app-deps.js';
import { REVOCATIONS_TOPIC } from '../changes.js';
import { badRequest, durationOf, forbidden, HttpError } from '../errors.js';
import { longPoll } from '../revocation/long-poll.js';
import { identifyRelyingParty, RelyingPartyError } from '../revocation/relying-party.js';
import {
  currentRevocations,
  latestRevocationSeq,
  revocationsAfter,
} from '../revocation/revocations.js';
import { queryOf, wholeNumber } from './input.js';

/**
 * `GET /v1/revocations[?cursor=…&wait=30s&limit=N]`: revoked grants, for the relying parties that
 * refuse them early (a custom service's deny list, a gateway) and for auditors and admins; not for
 * every developer. Without a cursor: every revocation whose window has not ended, and the cursor
 * to follow from; with one: the revocations after it, oldest first, and with `wait` held until
 * there is one (the long poll of `GET /v1/requests/:id`), so a follower hears of a revocation
 * within moments, whichever replica made it. Each entry names the `jti`s it stops.
 */
export const revocationRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.decorateRequest('relyingParty', null);

  app.get(
    '/v1/revocations',
    {
      onRequest: async (req) => {
        let party: Awaited<ReturnType<typeof identifyRelyingParty>>;
        try {
          party = await identifyRelyingParty(
            {
              servers: deps.resourceServers ?? [],
              authenticator: deps.authenticator,
              federation: deps.federation,
              publicUrl: deps.publicUrl,
            },
            req.headers.authorization,
          );
        } catch (err) {
          if (!(err instanceof RelyingPartyError)) throw err;
          throw new HttpError(
            401,
            ErrorCode.Unauthenticated,
            `the revocation list is for resource servers, auditors and admins: ${err.message}`,
            "resource servers: the broker's resource_servers setting (docs/credentials.md); people: jitctl login",
            { 'www-authenticate': 'Basic realm="jitctl revocations", Bearer realm="jitctl"' },
          );
        }
        req.relyingParty = party;
        if (party.kind === 'person') {
          req.caller = party.caller;
          if (!deps.service.isAuditor(party.caller) && !deps.service.isAdmin(party.caller))
            throw forbidden(
              'the revocation list is for resource servers, auditors and admins',
              `auditors are members of ${deps.auditors.map((g) => `group:${g}`).join(', ') || '(no group configured)'}; your own requests: jitctl list --mine`,
            );
        }
      },
      schema: { response: { 200: RevocationsResponse } },
    },
    async (req, reply) => {
      const q = queryOf(req, ['cursor', 'wait', 'limit']);
      const limit = q.limit === undefined ? 100 : wholeNumber(q.limit, 'limit', 1, 1000);
      const waitMs =
        q.wait === undefined
          ? undefined
          : Math.min(durationOf('wait', q.wait, 'e.g. wait=30s (at most 60s)'), MAX_WAIT_MS);
      const db = deps.db.kysely;
      if (q.cursor === undefined) {
        if (waitMs !== undefined)
          throw badRequest(
            '`wait` goes with `cursor`',
            'read the list once, then follow its next_cursor',
          );
        const upTo = await latestRevocationSeq(db);
        const items = await currentRevocations(db, deps.clock.now(), upTo, 10_000);
        return { items: items.map(strip), next_cursor: encodeCursor(upTo) };
      }
      const after = decodeCursor(q.cursor);
      let items = await revocationsAfter(db, after, limit);
      if (items.length === 0 && waitMs !== undefined) {
        const answered = await longPoll({
          hub: deps.hub,
          clock: deps.clock,
          key: REVOCATIONS_TOPIC,
          waitMs,
          reply,
          async changed() {
            items = await revocationsAfter(db, after, limit);
            return items.length > 0;
          },
        });
        if (!answered) return reply;
      }
      const last = items.length > 0 ? items[items.length - 1]!.seq : after;
      return { items: items.map(strip), next_cursor: encodeCursor(last) };
    },
  );
};

const strip = <T extends { seq: number }>({ seq: _, ...rest }: T) => rest;

/** Opaque to clients: the audit sequence number of the last revocation seen. */
function encodeCursor(seq: number): string {
  return Buffer.from(`r1:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const m =
    cursor.length <= 40
      ? /^r1:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
      : null;
  if (!m)
    throw badRequest(
      '`cursor` is not one this broker handed out',
      'pass `next_cursor` from the previous answer as is',
    );
  return Number(m[1]);
}
