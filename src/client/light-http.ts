import type { IncomingMessage } from 'node:http';
import { VERSION } from '../api/version.js';

/**
 * One small HTTP exchange with the broker on Node's own http module, for the calls made on every
 * `jitctl credential --kube`, `exec` and `shell` (the grant check, the long poll that follows a
 * grant, the report of a command): loading the full API client (undici) would cost more than
 * the exchange itself. No retries and no redirects; it never throws for what the broker answers,
 * only says it.
 */

export type LightAnswer =
  | { kind: 'answer'; status: number; headers: IncomingMessage['headers']; text: string }
  | { kind: 'unavailable'; reason: string };

export interface LightRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers?: Record<string, string>;
  /** JSON body. */
  body?: unknown;
  /** The whole exchange. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Answers longer than this are not read. */
  maxBytes?: number;
}

export async function lightRequest(o: LightRequest): Promise<LightAnswer> {
  const { request } =
    o.url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const max = o.maxBytes ?? 64 * 1024;
  return new Promise<LightAnswer>((resolve) => {
    let settled = false;
    const done = (a: LightAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      resolve(a);
    };
    const req = request(o.url, {
      method: o.method,
      headers: {
        accept: 'application/json',
        'user-agent': `jitctl/${VERSION}`,
        ...(payload !== undefined
          ? {
              'content-type': 'application/json',
              'content-length': String(Buffer.byteLength(payload)),
            }
          : {}),
        ...o.headers,
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ kind: 'unavailable', reason: 'the broker did not answer in time' });
    }, o.timeoutMs);
    const onAbort = () => {
      req.destroy();
      done({ kind: 'unavailable', reason: 'stopped' });
    };
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) =>
      done({ kind: 'unavailable', reason: err.code ?? err.message }),
    );
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          req.destroy();
          done({ kind: 'unavailable', reason: 'the answer is too large' });
        } else chunks.push(c);
      });
      res.on('error', () => done({ kind: 'unavailable', reason: 'the answer was cut off' }));
      res.on('end', () =>
        done({
          kind: 'answer',
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.end(payload);
  });
}
