import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { Authenticator } from './auth/authenticator.js';
import { OidcVerifier } from './auth/oidc-verifier.js';
import { ChangeHub, type ChangeListener, listenForChanges } from './changes.js';
import { type ServerClock, systemClock } from './clock.js';
import { ConfigError, defaultPublicUrl, type ServerConfig } from './config.js';
import type { DevIdentityProvider } from './dev/index.js';
import { Federation } from './federation/index.js';
import { createLogger } from './log.js';
import { Metrics } from './metrics.js';
import { type KeyRing, loadKeyRingFromDb, loadKeyRingFromFile } from './mint/keys.js';
import type { Notifier, NotifyEvent } from './notify.js';
import type { OnCallList } from './on-call.js';
import { loadPolicyFile, parsePolicy } from './policy/index.js';
import type { Policy } from './policy/types.js';
import { type RequestEvent, RequestService } from './requests/service.js';
import { type Db, openDatabase, parseDatabaseUrl } from './store/database.js';
import { migrateToLatest } from './store/migrations.js';

/**
 * Starting and stopping the broker. Only this module listens. Order matters: everything that can
 * fail on bad configuration (database, migrations, policy, signing key) happens before the port
 * is taken, so a broken deployment fails fast and never half-serves. The socket is opened before
 * the app is built because the public URL (and with --dev the identity provider's issuer) may
 * depend on the port actually bound (port 0 in tests).
 */
export interface StartOptions {
  /** JSON logs go here (default: stdout). */
  logStream?: Writable;
  clock?: ServerClock;
  /** How often pending and approved requests are checked for expiry (default 5 s). */
  sweepIntervalMs?: number;
  /** Called after commit for each state change (the webhook notifier). */
  onEvent?: (event: RequestEvent, logger: Logger) => void;
  /** How soon after a JWKS fetch an unknown kid may refetch it (default 30 s; tests shorten it). */
  jwksCooldownMs?: number;
  /** Environment for the --dev identity provider's JITCTL_DEV_IDP_* settings (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** How long graceful shutdown waits for in-flight requests before closing sockets (default 10 s). */
  shutdownGraceMs?: number;
}

export interface RunningBroker {
  /** Where the broker listens, e.g. http://127.0.0.1:41234 */
  url: string;
  /** The issuer URL of its credentials (public_url, or `url`). */
  publicUrl: string;
  /** The development identity provider, with --dev. */
  dev: DevIdentityProvider | undefined;
  policy: Policy;
  db: Db;
  app: FastifyInstance;
  logger: Logger;
  /** Graceful: stop accepting, answer waiting long polls, finish in-flight requests, close the database. */
  close(): Promise<void>;
}

/** The webhook payload of a committed change: names for people, never tokens. */
export function toNotifyEvent(e: RequestEvent): NotifyEvent {
  const who = (i: { sub: string; name: string | null } | null) => (i ? (i.name ?? i.sub) : null);
  const byReviewer =
    e.review !== null ||
    e.type === 'request.revoked' ||
    e.type === 'break_glass.acknowledged' ||
    e.type === 'break_glass.flagged';
  return {
    type: e.type,
    request_id: e.request.id,
    role: e.request.role,
    requester: who(e.request.requester)!,
    duration: e.request.duration,
    reason: e.request.reason,
    ticket: e.request.ticket,
    reviewer: byReviewer ? who(e.actor) : null,
    ...(e.type === 'review.recorded' ? { decision: e.review?.decision ?? null } : {}),
    comment:
      e.review?.comment ??
      (e.type.startsWith('break_glass.') ? (e.request.break_glass?.comment ?? null) : null),
    at: e.at,
    priority: e.priority,
  };
}

const isIdpPath = (url: string | undefined) =>
  url !== undefined && (url === '/idp' || url.startsWith('/idp/') || url.startsWith('/idp?'));

export async function startBroker(
  config: ServerConfig,
  opts: StartOptions = {},
): Promise<RunningBroker> {
  const clock = opts.clock ?? systemClock;
  const logger = createLogger(config.logLevel, opts.logStream);
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        logger.warn({ err }, 'error while shutting down');
      }
    }
  };

  try {
    const target = parseDatabaseUrl(config.db);
    const db = await openDatabase(target);
    cleanups.push(() => db.close());
    await migrateToLatest(db.kysely, db.dialect);

    // --dev: the built-in provider decides the acr values it can reach (password, password + TOTP).
    const devModule = config.dev ? await import('./dev/index.js') : undefined;
    const acrLevels = devModule ? [...devModule.ACR_LEVELS] : config.acrLevels;
    let policy: Policy;
    if (config.policy) {
      policy = await loadPolicyFile(config.policy, { acrLevels });
    } else if (devModule) {
      policy = parsePolicy(devModule.DEMO_POLICY, 'the --dev demo policy', { acrLevels });
    } else {
      throw new Error('no policy file configured');
    }

    const keys: KeyRing =
      config.signingKey === 'db'
        ? await loadKeyRingFromDb(db, config.signingAlg, clock)
        : await loadKeyRingFromFile(config.signingKey, config.signingAlg);

    // Listen first; requests that arrive before the app is ready get a 503.
    let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end('{"error":{"code":"unavailable","message":"the broker is starting"}}');
    };
    let dev: DevIdentityProvider | undefined;
    const server = createServer(
      // Long polls wait up to MAX_WAIT_MS (60 s); slow clients still get a bound.
      { requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 },
      (req, res) => {
        if (dev && isIdpPath(req.url)) dev.handle(req, res);
        else handler(req, res);
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const url = defaultPublicUrl({ host: address.address, port: address.port });
    const publicUrl = config.publicUrl ?? url;
    let serverClosed = false;
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          if (serverClosed) return resolve();
          serverClosed = true;
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );

    let oidc: { issuer: string; clientId: string; scopes: string[] };
    if (devModule) {
      dev = await devModule.createDevIdentityProvider({
        baseUrl: publicUrl,
        dataDir: config.dataDir,
        onEvent: (event) => logger.info({ idp: event }, 'dev identity provider'),
        ...(opts.env ? { env: opts.env } : {}),
      });
      const provider = dev;
      cleanups.push(() => provider.close());
      oidc = { issuer: dev.issuer, clientId: dev.clientId, scopes: dev.scopes };
    } else {
      oidc = {
        issuer: config.oidcIssuer!,
        clientId: config.oidcClientId!,
        scopes: config.oidcScopes,
      };
    }

    let notifier: Notifier | undefined;
    if (policy.notify.length > 0) {
      const { createNotifier } = await import('./notify.js');
      const n = createNotifier(policy.notify, logger);
      notifier = n;
      cleanups.push(() => n.close());
    }

    const hub = new ChangeHub();
    cleanups.push(() => hub.close());
    const metrics = new Metrics({ longPolls: () => hub.waiting });
    const verifier = new OidcVerifier({
      issuer: oidc.issuer,
      audiences: [oidc.clientId, config.oidcAudience ?? publicUrl],
      groupsClaim: config.groupsClaim,
      clock,
      isOwnKid: keys.isOwnKid,
      ...(opts.jwksCooldownMs !== undefined ? { jwksCooldownMs: opts.jwksCooldownMs } : {}),
    });
    // Session tokens carry aud = the broker; a role whose credentials had that audience would let
    // a relying party that ignores `typ` take a pipeline's session for a credential.
    if (config.trustedIssuers.length > 0) {
      for (const role of policy.roles.values()) {
        if (role.credential.audience === publicUrl)
          throw new ConfigError(
            `role ${role.name}: credential.audience ${publicUrl} is the broker itself, which is the audience of pipeline sessions (trusted_issuers)`,
          );
      }
    }
    const federation = new Federation({
      entries: config.trustedIssuers,
      publicUrl,
      keys,
      clock,
      db,
      metrics,
      ...(opts.jwksCooldownMs !== undefined ? { jwksCooldownMs: opts.jwksCooldownMs } : {}),
    });
    const authenticator = new Authenticator({
      verifiers: [verifier, federation.sessionVerifier],
      clock,
      publicUrl,
    });
    // Approval rules with `on_call: true` read this list (policy `on_call`).
    let onCall: OnCallList | undefined;
    if (policy.onCall) {
      const { OnCallList } = await import('./on-call.js');
      const list = new OnCallList(policy.onCall, config.policy ?? null, logger);
      await list.start();
      onCall = list;
      cleanups.push(() => list.close());
    }
    const service = new RequestService({
      ...(onCall ? { onCall } : {}),
      db,
      policy,
      clock,
      hub,
      metrics,
      keys,
      publicUrl,
      access: {
        acrLevels,
        reviewStepUp: config.reviewStepUp,
        admins: config.admins,
        auditors: config.auditors,
      },
      onEvent: (e: RequestEvent) => {
        notifier?.notify(toNotifyEvent(e));
        opts.onEvent?.(e, logger);
      },
    });

    let fastifyHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
    const app = await buildApp({
      service,
      authenticator,
      oidc: { ...oidc, metadata: () => verifier.metadata() },
      federation,
      keys,
      publicUrl,
      metrics,
      hub,
      clock,
      logger,
      db,
      auditors: config.auditors,
      trustProxy: config.trustProxy,
      // Migrations ran before the port opened, so reachable means ready.
      async ready() {
        await db.kysely.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow();
        return true;
      },
      serverFactory: (h) => {
        fastifyHandler = h;
        return server;
      },
    });
    cleanups.push(() => app.close());
    await app.ready();
    handler = fastifyHandler!;

    // Expiry happens lazily on every read and write; the sweep covers requests nobody touches,
    // so webhooks and the audit log learn about lapses on time.
    const sweepEvery = opts.sweepIntervalMs ?? 5_000;
    let sweeping = false;
    const sweep = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      service
        .expireDue(500)
        .catch((err: unknown) => logger.warn({ err }, 'expiry sweep failed; retrying next time'))
        .finally(() => {
          sweeping = false;
        });
    }, sweepEvery);
    sweep.unref();
    cleanups.push(() => clearInterval(sweep));

    let listener: ChangeListener | undefined;
    if (db.postgresUrl) {
      listener = await listenForChanges(db.postgresUrl, hub, logger);
      const l = listener;
      cleanups.push(() => l.close());
    }

    logger.info(
      {
        url,
        publicUrl,
        db: db.description,
        roles: [...policy.roles.keys()],
        issuer: oidc.issuer,
        trustedIssuers: config.trustedIssuers.map((t) => `${t.name} (${t.issuer})`),
        kid: keys.current.kid,
      },
      'broker listening',
    );

    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        clearInterval(sweep);
        // Stop accepting and let in-flight requests finish; waiting long polls answer now.
        serverClosed = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        hub.close();
        // Keep-alive sockets go idle as their last response finishes; close each as it does.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        server.closeIdleConnections();
        const grace = setTimeout(
          () => server.closeAllConnections(),
          opts.shutdownGraceMs ?? 10_000,
        );
        await stopped;
        clearInterval(idle);
        clearTimeout(grace);
        await cleanup();
        logger.info('broker stopped');
        logger.flush?.();
      })();
      return closing;
    };
    return { url, publicUrl, dev, policy, db, app, logger, close };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
