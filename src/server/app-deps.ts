import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
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
  /** Reports and access reviews (src/server/governance); absent: their endpoints are not served. */
  governance?: Governance;
  /** Use this HTTP server instead of creating one (start.ts listens before building the app). */
  serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server;
}
