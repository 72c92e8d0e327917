import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { Checkpointer } from './audit/checkpoints.js';
import { AuditFeed } from './audit/feed.js';
import { openSinks, type SinkTuning, SinkWorker } from './audit/sinks/worker.js';
import { Authenticator } from './auth/authenticator.js';
import { OidcVerifier } from './auth/oidc-verifier.js';
import { ChangeHub, type ChangeListener, listenForChanges } from './changes.js';
import { type ServerClock, systemClock } from './clock.js';
import { ConfigError, defaultPublicUrl, type ServerConfig } from './config.js';
import type { DevIdentityProvider, DevUser } from './dev/index.js';
import { Federation } from './federation/index.js';
import { accessByGroups, Governance } from './governance/index.js';
import { listenEarly } from './listen.js';
import { createLogger } from './log.js';
import { Metrics } from './metrics.js';
import { type KeyWatch, watchKeys } from './mint/key-watch.js';
import type { KeyRing, LiveKeyRing } from './mint/keys.js';
import { openKeyStore } from './mint/open-key-store.js';
import { openChannels } from './notify/channels.js';
import { NotificationWorker, type NotifyTuning } from './notify/worker.js';
import type { OnCallList } from './on-call.js';
import { setupPages } from './pages/setup.js';
import { PeopleDirectory } from './people/directory.js';
import { loadPolicyFile, parsePolicy } from './policy/index.js';
import type { Policy } from './policy/types.js';
import { makePrivateDir, refuseSharedFiles } from './private-files.js';
import { type RequestEvent, RequestService } from './requests/service.js';
import { type Db, openDatabase, parseDatabaseUrl } from './store/database.js';
import { migrateToLatest } from './store/migrations.js';
import { whenDatabaseReachable } from './store/wait-for-database.js';

export { StartAborted } from './store/wait-for-database.js';

/**
 * Starting and stopping the broker. Only this module listens. Order matters: what can fail on bad
 * configuration without the database (the database URL and SQLite file, the policy, a key file)
 * fails before the port is taken, so a broken deployment fails fast. Then the port opens and the
 * broker waits for its database if it cannot reach it yet (logging every few seconds; `/healthz`
 * answers 200, `/readyz` and the API 503), runs migrations and loads the key; only then is the
 * app built, so it never half-serves. The socket is opened before the app is built because the
 * public URL (and with --dev the identity provider's issuer) may depend on the port actually
 * bound (port 0 in tests).
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
  /**
   * Shutdown asked for while the broker still waits for its database at start: startBroker then
   * rejects with {@link StartAborted}.
   */
  signal?: AbortSignal;
  /** --dev: the identity provider's people instead of the demo users (tests add a second lead). */
  devUsers?: readonly DevUser[];
  /** How often the signing keys are re-read (default 5 s; tests shorten it). */
  keyRefreshMs?: number;
  /** Called when the key set changed (a rotation or retirement was picked up). */
  onKeysChanged?: (ring: LiveKeyRing) => void;
  /** Notification delivery: poll interval, timeouts, backoff (tests shorten them). */
  notify?: NotifyTuning;
  /** Audit streaming: sinks' delivery tuning, the feed's safety-net poll, the checkpoint interval. */
  audit?: { sinks?: SinkTuning; feedPollMs?: number; checkpointIntervalMs?: number | null };
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
  /** The signing keys as this broker sees them; `refresh()` re-reads them now. */
  keys: KeyWatch;
  /** Everyone who has signed in (src/server/people/directory.ts). */
  people: PeopleDirectory;
  /** Reports and access reviews (tests run `governance.reviews.tick()` instead of waiting). */
  governance: Governance;
  /** Graceful: stop accepting, answer waiting long polls, finish in-flight requests, close the database. */
  close(): Promise<void>;
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
    // --dev keeps its database in the data directory: create that 0700 before the database does.
    if (config.dev) makePrivateDir(config.dataDir);
    const target = parseDatabaseUrl(config.db);
    const db = await openDatabase(target, {
      lock: true,
      onConnectionError: (err) =>
        logger.warn({ err: err.message }, 'a database connection was lost; reconnecting'),
    });
    cleanups.push(() => db.close());

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

    // Signing secrets and the SMTP relay are checked before the port opens, like the rest.
    const channels = await openChannels(policy.notify, config.notifications, {
      env: opts.env ?? process.env,
      mailDomain: config.publicUrl ? new URL(config.publicUrl).hostname : 'jitctl.invalid',
      timeoutMs: opts.notify?.timeoutMs ?? 10_000,
    });
    cleanups.push(() => channels.mailer?.close());
    // Audit sinks: secrets resolved and files checked before the port opens, like the rest.
    const auditSinks = openSinks(
      config.audit.sinks,
      config.notifications.webhookSecrets,
      opts.env ?? process.env,
    );

    // A key file is checked before the port opens (its permissions, its shape); keys in the
    // database once the database answers.
    let keyWatch: KeyWatch | undefined;
    const keyStore = await openKeyStore(config, db);
    if (config.signingKey !== 'db')
      refuseSharedFiles([config.signingKey], 'the private key that signs credentials');
    cleanups.push(() => keyWatch?.close());

    // Listen first; until the app is ready, /healthz says the process is up and the rest 503.
    let dev: DevIdentityProvider | undefined;
    const front = await listenEarly(config.listen, (req) => {
      const idp = dev;
      return idp && isIdpPath(req.url) ? (rq, rs) => idp.handle(rq, rs) : undefined;
    });
    const { server } = front;
    cleanups.push(() => front.stop());
    const address = server.address() as AddressInfo;
    const url = defaultPublicUrl({ host: address.address, port: address.port });
    const publicUrl = config.publicUrl ?? url;

    // A database that cannot be reached yet is waited for, however long, until shutdown.
    keyWatch = await whenDatabaseReachable(
      async () => {
        await migrateToLatest(db.kysely, db.dialect);
        return watchKeys({
          store: keyStore,
          alg: config.signingAlg,
          clock,
          logger,
          db,
          autoRetire: config.keyAutoRetire,
          ...(opts.keyRefreshMs !== undefined ? { refreshMs: opts.keyRefreshMs } : {}),
          ...(opts.onKeysChanged ? { onChange: opts.onKeysChanged } : {}),
        });
      },
      {
        signal: opts.signal,
        onWait: (err, retryInMs, attempt) => {
          front.starting('waiting for the database');
          const why = err.cause instanceof Error ? err.cause : err;
          logger.warn(
            { url, db: db.description, err: why.message, attempt, retry_in_ms: retryInMs },
            'waiting for the database',
          );
        },
      },
    );
    const keys: KeyRing = keyWatch.ring;

    let oidc: { issuer: string; clientId: string; scopes: string[] };
    if (devModule) {
      dev = await devModule.createDevIdentityProvider({
        baseUrl: publicUrl,
        dataDir: config.dataDir,
        onEvent: (event) => logger.info({ idp: event }, 'dev identity provider'),
        ...(opts.env ? { env: opts.env } : {}),
        ...(opts.devUsers ? { users: opts.devUsers } : {}),
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

    const hub = new ChangeHub();
    cleanups.push(() => hub.close());
    const metrics = new Metrics({ longPolls: () => hub.waiting });
    const people = new PeopleDirectory({ db, clock, logger });
    cleanups.push(() => people.flush());
    // Routes the audit log into the outbox and delivers it; runs even with nothing routed, so
    // that routes added later start from now instead of replaying history.
    const notifications = new NotificationWorker({
      db,
      clock,
      logger,
      metrics,
      directory: people,
      channels,
      publicUrl,
      settings: config.notifications,
      ...(opts.notify ? { tuning: opts.notify } : {}),
    });
    cleanups.push(() => notifications.close());
    // Audit streaming: long polls of GET /v1/audit, the sinks, and signed checkpoints.
    const feed = new AuditFeed({
      db,
      hub,
      ...(opts.audit?.feedPollMs !== undefined ? { pollMs: opts.audit.feedPollMs } : {}),
    });
    cleanups.push(() => feed.close());
    const sinkWorker = new SinkWorker({
      db,
      clock,
      logger,
      metrics,
      sinks: auditSinks,
      publicUrl,
      ...(opts.audit?.sinks ? { tuning: opts.audit.sinks } : {}),
    });
    cleanups.push(() => sinkWorker.close());
    feed.listen(() => sinkWorker.kick());
    const checkpoints = new Checkpointer({
      db,
      keys,
      clock,
      publicUrl,
      logger,
      intervalMs:
        opts.audit?.checkpointIntervalMs !== undefined
          ? opts.audit.checkpointIntervalMs
          : config.audit.checkpointIntervalMs,
      onCreated: () => {
        metrics.auditCheckpoints.inc();
        sinkWorker.kick();
      },
    });
    cleanups.push(() => checkpoints.close());
    const verifier = new OidcVerifier({
      issuer: oidc.issuer,
      audiences: [oidc.clientId, config.oidcAudience ?? publicUrl],
      clientId: oidc.clientId,
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
      onVerified: (caller) => people.seen(caller),
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
    // Reports and access reviews; a removal decided in a review stops filings at once (refusal).
    const governance = new Governance({
      db,
      clock,
      policy,
      trustedIssuers: config.trustedIssuers,
      publicUrl,
      access: accessByGroups(config.auditors, config.admins),
      stepUp: { rule: config.reviewStepUp, acrLevels },
      onAudit: () => notifications.kick(),
    });
    const service = new RequestService({
      ...(onCall ? { onCall } : {}),
      refusal: (caller, role) => governance.reviews.refusal(caller, role),
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
        notifications.kick();
        opts.onEvent?.(e, logger);
      },
    });

    const pages = await setupPages({
      db,
      clock,
      service,
      publicUrl,
      ui: config.ui,
      oidc,
      devWebClient: dev?.webClient,
      groupsClaim: config.groupsClaim,
      isOwnKid: keys.isOwnKid,
      auditors: config.auditors,
      jwksCooldownMs: opts.jwksCooldownMs,
      onSignedIn: (caller) => people.seen(caller),
    });
    pages.governance = governance;

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
      pages,
      audit: { feed, checkpoints, sinks: () => sinkWorker.status() },
      governance,
      trustProxy: config.trustProxy,
      rateLimits: config.rateLimits,
      resourceServers: config.resourceServers,
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
    front.serve(fastifyHandler!);

    // Expiry happens lazily on every read and write; the sweep covers requests nobody touches,
    // so webhooks and the audit log learn about lapses on time.
    const sweepEvery = opts.sweepIntervalMs ?? 5_000;
    let sweeping = false;
    const sweep = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      Promise.all([service.expireDue(500), governance.reviews.tick()])
        .catch((err: unknown) => logger.warn({ err }, 'expiry sweep failed; retrying next time'))
        .finally(() => {
          sweeping = false;
        });
    }, sweepEvery);
    sweep.unref();
    cleanups.push(() => clearInterval(sweep));

    notifications.start();
    sinkWorker.start();
    checkpoints.start();
    if (config.notifications.smtp && !channels.mailer)
      logger.warn(
        {},
        'smtp is configured but the policy sends no email: add notify entries such as { email: [approvers, requester] }',
      );

    let listener: ChangeListener | undefined;
    if (db.postgresUrl) {
      // Never fails for want of the database: it keeps reconnecting in the background.
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
        notify: {
          webhooks: [...channels.webhooks.values()].map((w) => `${w.origin} (${w.format})`),
          email: channels.mailer !== null,
          securityContacts: config.notifications.securityContacts.length,
        },
      },
      'broker listening',
    );

    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        clearInterval(sweep);
        // Stop accepting and let in-flight requests finish; waiting long polls answer now.
        front.closing();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        hub.close();
        feed.close();
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
    return {
      url,
      publicUrl,
      dev,
      policy,
      db,
      app,
      logger,
      keys: keyWatch,
      people,
      governance,
      close,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
