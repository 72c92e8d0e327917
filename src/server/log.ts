import type { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { REDACTED } from '../api/secret.js';
import type { LogLevel } from './config.js';

/**
 * The broker's logs: pino, one JSON object per line on stdout. Requests are logged by method,
 * route, status, duration and request id; headers and bodies are not logged at all (so neither
 * `Authorization` nor a minted credential can reach a log), and as a second line of defence known
 * secret-bearing paths are redacted and anything shaped like a JWT or a bearer token in a log
 * message is replaced.
 */

/** Three base64url segments starting with a JSON header (`eyJ`): a JWS or the start of a JWE. */
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
const BEARER = /\b(Bearer)\s+[A-Za-z0-9._~+/-]+=*/gi;

export function scrub(text: string): string {
  return text.replace(JWT_LIKE, REDACTED).replace(BEARER, `$1 ${REDACTED}`);
}

function scrubDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    const out: Record<string, unknown> = {
      type: value.name,
      message: scrub(value.message),
    };
    if (value.stack) out.stack = scrub(value.stack);
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubDeep(v, depth + 1);
  return out;
}

export function createLogger(level: LogLevel, destination?: Writable): Logger {
  return pino(
    {
      level,
      base: { service: 'jitctl-broker' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          'authorization',
          'token',
          '*.token',
          'access_token',
          'id_token',
          'refresh_token',
          'subject_token',
          'password',
          'private_jwk',
        ],
        censor: REDACTED,
      },
      serializers: {
        // Only what an operator needs to follow a request; never headers or bodies.
        req: (req: { method?: string; url?: string; ip?: string; id?: string }) => ({
          method: req.method,
          url: req.url ? scrub(req.url.split('?')[0]!) : undefined,
          remoteAddress: req.ip,
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
        err: (err: unknown) => scrubDeep(err),
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => scrubDeep(a)) as Parameters<typeof method>);
        },
      },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
