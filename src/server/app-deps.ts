import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Checkpointer } from './audit/checkpoints.js';
import type { AuditFeed } from './audit/feed.js';
import type { SinkStatus } from './audit/sinks/worker.js';
import type { Authenticator } from './auth/authenticator.js';
import type { ChangeHub } from './changes.js';
import type { ServerClock } from './clock.js';
import type { Federation } from './federation/index.js';
import type { Governance } from './governance/index.js';
import type { RateLimits } from './limits/settings.js';
import type { Metrics } from './metrics.js';
import type { KeyRing } from './mint/keys.js';
import type { PagesDeps } from './pages/index.js';
import type { Caller } from './policy/types.js';
import type { RequestService } from './requests/service.js';
import type { ResourceServer } from './revocation/resource-servers.js';
import type { Db } from './store/database.js';

/**
 * What the broker's HTTP application is built from. Its own module, apart from app.ts, so that the
 * route plugins app.ts registers can name it without importing app.ts back (an import cycle).
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller (set by the `authenticate` hook of signed-in routes). */
    caller: Caller | null;
  }
}

export interface OidcSettings {
  issuer: string;
  clientId: string;
  scopes: string[];
  /** The provider's discovery document (throws a 503 HttpError when unreachable). */
  metadata(): Promise<Record<string, unknown>>;
}

export interface AppDeps {
  service: RequestService;
  authenticator: Authenticator;
  oidc: OidcSettings;
  keys: KeyRing;
  publicUrl: string;
  metrics: Metrics;
  hub: ChangeHub;
  clock: ServerClock;
  logger: Logger;
  db: Db;
  /** Pipelines' token exchange (RFC 8693, `POST /v1/token`) and the sessions it issues. */
  federation: Federation;
  /** Group names whose members may read the audit log (named in the 403's hint). */
  auditors: string[];
  /** Whether the database answers and is migrated (/readyz). */
  ready(): Promise<boolean>;
  trustProxy?: boolean | number | string[];
  /** Abuse limits per door (docs/operations.md "Rate limits"); default DEFAULT_RATE_LIMITS. */
  rateLimits?: RateLimits;
  /** The review pages under /ui/ (src/server/pages); absent: no pages (tests of the API alone). */
  pages?: PagesDeps;
  /**
   * Audit streaming (src/server/audit/): the long poll of `GET /v1/audit?wait=`, checkpoints, and
   * the sinks' state for /readyz. Absent: no waiting, no checkpoints.
   */
  audit?: {
    feed: AuditFeed;
    checkpoints: Checkpointer;
    sinks(): SinkStatus[];
  };
  /**
   * Relying parties that may introspect credentials and follow revocations (the
   * `resource_servers` setting; src/server/revocation/resource-servers.ts); absent: none.
   */
  resourceServers?: ResourceServer[];
  /** Reports and access reviews (src/server/governance); absent: their endpoints are not served. */
  governance?: Governance;
  /** Use this HTTP server instead of creating one (start.ts listens before building the app). */
  serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server;
}
