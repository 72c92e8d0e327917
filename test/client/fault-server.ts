import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Clock } from '../../src/cli/context.js';
import { InterruptedError } from '../../src/cli/errors.js';

/**
 * A real HTTP server on 127.0.0.1 that misbehaves on purpose, one scripted answer per incoming
 * request: connection resets, hangs, 5xx with Retry-After, garbage, then the right answer. It is
 * a network fault injector for the API client's retry logic, not a stand-in for the broker
 * (everything else is tested against the real broker).
 */

export type Fault =
  | { kind: 'json'; status?: number; body: unknown; headers?: Record<string, string> }
  | { kind: 'text'; status: number; body: string; headers?: Record<string, string> }
  /** Close the connection without an answer (the client sees a reset / socket error). */
  | { kind: 'reset' }
  /** Never answer (the client's read timeout fires). */
  | { kind: 'hang' }
  /** Stream `bytes` of body without a length (the client must stop reading). */
  | { kind: 'flood'; bytes: number };

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface FaultServer {
  url: string;
  seen: Seen[];
  /** Answers for the next requests, in order; when empty, `fallback` answers. */
  script(...faults: Fault[]): void;
  fallback: Fault;
  /** Forgets the script, what was seen and the fallback (between tests). */
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultServer(): Promise<FaultServer> {
  const queue: Fault[] = [];
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const self = {
    url: '',
    seen,
    fallback: { kind: 'json', body: {} } as Fault,
    script: (...faults: Fault[]) => void queue.push(...faults),
    reset: () => {
      queue.length = 0;
      seen.length = 0;
      self.fallback = { kind: 'json', body: {} };
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const answer = (fault: Fault, req: IncomingMessage, res: ServerResponse) => {
    switch (fault.kind) {
      case 'json':
        res.writeHead(fault.status ?? 200, {
          'content-type': 'application/json',
          ...fault.headers,
        });
        res.end(JSON.stringify(fault.body));
        return;
      case 'text':
        res.writeHead(fault.status, { 'content-type': 'text/html', ...fault.headers });
        res.end(fault.body);
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'hang':
        return;
      case 'flood': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let sent = 0;
        const pump = () => {
          while (sent < fault.bytes) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
        return;
      }
    }
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      answer(queue.shift() ?? self.fallback, req, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  self.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return self;
}

/** A port on 127.0.0.1 where nothing listens (connections are refused). */
export async function closedPort(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/**
 * A clock whose sleeps return at once and are recorded (and move its time forward), so backoff
 * and Retry-After are checked as numbers, never by waiting.
 */
export function recordingClock(): Clock & { sleeps: number[]; advance(ms: number): void } {
  let offset = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms;
    },
    async sleep(ms, signal) {
      if (signal?.aborted) throw new InterruptedError();
      sleeps.push(ms);
      offset += ms;
    },
  };
}
