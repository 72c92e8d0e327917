import type { Authenticator } from '../auth/authenticator.js';
import { HttpError } from '../errors.js';
import { OAuthError } from '../federation/errors.js';
import type { Federation } from '../federation/index.js';
import type { Caller } from '../policy/types.js';
import {
  bySecret,
  byWorkload,
  issuerOf,
  parseBasic,
  type ResourceServer,
} from './resource-servers.js';

/**
 * Who is asking at the doors relying parties use (`POST /v1/introspect`, `GET /v1/revocations`):
 * a configured resource server (Basic client id and secret, or its own token from a trusted
 * issuer, raw or exchanged for a broker session), or a person signed in as usual (auditors and
 * admins may read the revocation list). Refusals name the reason for the operator's log, never
 * echo a secret or a token.
 */

export type RelyingParty =
  | { kind: 'resource_server'; server: ResourceServer }
  | { kind: 'person'; caller: Caller };

/** Not a known resource server, nor a person: a 401 at both doors. */
export class RelyingPartyError extends Error {
  override name = 'RelyingPartyError';
}

export interface RelyingPartyDeps {
  servers: readonly ResourceServer[];
  authenticator: Authenticator;
  federation: Federation;
  publicUrl: string;
}

export async function identifyRelyingParty(
  deps: RelyingPartyDeps,
  authorization: string | undefined,
): Promise<RelyingParty> {
  if (!authorization)
    throw new RelyingPartyError(
      'authenticate as a resource server (HTTP Basic client id and secret, or your own token)',
    );
  if (/^Basic /i.test(authorization)) {
    const basic = parseBasic(authorization);
    if (!basic) throw new RelyingPartyError('the Basic credentials are malformed');
    const server = bySecret(deps.servers, basic.id, basic.secret);
    if (!server) throw new RelyingPartyError('unknown client id or wrong secret');
    return { kind: 'resource_server', server };
  }
  const bearer = /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
  if (!bearer) throw new RelyingPartyError('send Basic or Bearer credentials');
  const iss = issuerOf(bearer);
  // A resource server's own token from a trusted issuer (a Kubernetes service account, a CI job).
  if (iss !== undefined && iss !== deps.publicUrl && deps.federation.trusts(iss)) {
    let workload: { entry: string; subject: string };
    try {
      workload = await deps.federation.verifyExternal(bearer);
    } catch (err) {
      if (err instanceof OAuthError && err.error !== 'temporarily_unavailable')
        throw new RelyingPartyError(`the token was refused: ${err.description}`);
      throw err;
    }
    const server = byWorkload(deps.servers, workload.entry, workload.subject);
    if (!server)
      throw new RelyingPartyError(
        `${workload.subject} (trusted issuer ${workload.entry}) is not one of the resource_servers`,
      );
    return { kind: 'resource_server', server };
  }
  // A person's sign-in, or a workload's broker session from token exchange.
  let caller: Caller;
  try {
    caller = await deps.authenticator.authenticate(authorization);
  } catch (err) {
    if (err instanceof HttpError && err.status >= 500) throw err;
    throw new RelyingPartyError((err as Error).message);
  }
  if (caller.workload) {
    const server = byWorkload(deps.servers, caller.workload.entry, caller.sub);
    if (server) return { kind: 'resource_server', server };
  }
  return { kind: 'person', caller };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who asks at `POST /v1/introspect` and `GET /v1/revocations` (rate limits key on it). */
    relyingParty: RelyingParty | null;
  }
}
