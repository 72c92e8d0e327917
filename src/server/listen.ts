import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { answerClientError } from './client-errors.js';
import type { ListenAddress } from './config.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The broker's port, opened before anything slow (waiting for the database, migrations, keys): a
 * replica restarted during a database outage answers at once. Until {@link EarlyListener.serve}
 * hands it the app, `/healthz` says the process is up and every other path answers 503 in the
 * API's error shape with what the broker is doing; HTTP parser errors use that shape throughout.
 */
export interface EarlyListener {
  server: Server;
  /** What the broker is doing meanwhile, for the 503s (`waiting for the database`). */
  starting(what: string): void;
  /** From now on every request goes to the app. */
  serve(handler: Handler): void;
  /** Shutdown has begun elsewhere: {@link stop} has nothing left to do. */
  closing(): void;
  /** Stops listening and drops every connection (a start that failed). */
  stop(): Promise<void>;
}

export async function listenEarly(
  listen: ListenAddress,
  /** A handler that takes a request before the app (the --dev identity provider's paths). */
  takeOver: (req: IncomingMessage) => Handler | undefined,
): Promise<EarlyListener> {
  let starting = 'the broker is starting';
  let handler: Handler = (req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    res.writeHead(503, {
      'content-type': 'application/json',
      'retry-after': '5',
      'cache-control': 'no-store',
    });
    res.end(
      JSON.stringify({
        error: {
          code: 'unavailable',
          message: path === '/readyz' ? `not ready: ${starting}` : starting,
          hint: 'try again shortly',
        },
      }),
    );
  };
  const server = createServer(
    // Long polls wait up to MAX_WAIT_MS (60 s); slow clients still get a bound.
    { requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 },
    (req, res) => (takeOver(req) ?? handler)(req, res),
  );
  // Before the app exists as well as after: HTTP parser errors in the API's error shape.
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closed = false;
  return {
    server,
    starting: (what) => {
      starting = what;
    },
    serve: (h) => {
      handler = h;
    },
    closing: () => {
      closed = true;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
