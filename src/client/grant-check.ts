import type { GrantStatus } from '../api/grant.js';
import { lightRequest } from './light-http.js';

/**
 * Asking the broker whether the grant of a stored credential still holds
 * (`GET /v1/credential/status`, the credential as its own proof): before `exec`, `shell` and
 * `credential` hand a stored credential over, and, with `waitMs`, to follow the grant while a
 * command runs (the broker's long poll). kubectl runs `jitctl credential --kube` on every command,
 * so this is one small request on Node's own http module (light-http.ts): no client library to
 * load, no session, no identity provider. It never prints and never throws for what the broker
 * answers: the caller decides what each outcome means.
 */

export type GrantAnswer =
  /** The grant as the broker sees it (active, revoked, ended…), and the long poll's ETag. */
  | { kind: 'status'; status: GrantStatus; etag: string | undefined }
  /** The broker does not take this credential (401) or knows no such request (404). */
  | { kind: 'refused'; httpStatus: number; message: string }
  /** No answer to act on: unreachable, timed out, a 5xx or a 429; `reason` says which. */
  | { kind: 'unavailable'; reason: string; retryAfterMs?: number | undefined };

export interface GrantCheckOptions {
  server: string;
  /** The credential itself. */
  token: string;
  /** Long poll: how long the broker may hold the answer (it caps this at 60 s). */
  waitMs?: number | undefined;
  /** The ETag already seen: with `waitMs`, the broker answers when the grant differs from it. */
  etag?: string | undefined;
  /** The whole exchange, beyond `waitMs`. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export async function checkGrant(o: GrantCheckOptions): Promise<GrantAnswer> {
  let url: URL;
  try {
    url = new URL('/v1/credential/status', o.server);
  } catch {
    return { kind: 'unavailable', reason: `${o.server} is not a URL` };
  }
  if (o.waitMs !== undefined) url.searchParams.set('wait', `${Math.ceil(o.waitMs / 1000)}s`);
  const a = await lightRequest({
    method: 'GET',
    url,
    headers: {
      authorization: `Bearer ${o.token}`,
      ...(o.etag ? { 'if-none-match': o.etag } : {}),
    },
    timeoutMs: o.timeoutMs + (o.waitMs ?? 0),
    signal: o.signal,
  });
  if (a.kind === 'unavailable') return a;
  let body: unknown;
  try {
    body = JSON.parse(a.text);
  } catch {
    body = undefined;
  }
  if (a.status === 200 && isGrantStatus(body)) {
    const etag = a.headers.etag;
    return { kind: 'status', status: body, etag: typeof etag === 'string' ? etag : undefined };
  }
  if (a.status === 401 || a.status === 404) {
    const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
    return {
      kind: 'refused',
      httpStatus: a.status,
      message: typeof message === 'string' ? message : `HTTP ${a.status}`,
    };
  }
  const retry = Number(a.headers['retry-after']);
  return {
    kind: 'unavailable',
    reason: a.status === 200 ? 'the answer is not a grant status' : `HTTP ${a.status}`,
    retryAfterMs: Number.isFinite(retry) && retry > 0 ? retry * 1000 : undefined,
  };
}

function isGrantStatus(v: unknown): v is GrantStatus {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.active === 'boolean' &&
    typeof o.request_id === 'string' &&
    typeof o.role === 'string' &&
    typeof o.state === 'string' &&
    typeof o.expires_at === 'string' &&
    !Number.isNaN(Date.parse(o.expires_at)) &&
    (o.revoked === null || isRevocation(o.revoked)) &&
    typeof o.use === 'object' &&
    o.use !== null
  );
}

function isRevocation(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const by = r.by as Record<string, unknown> | null | undefined;
  return (
    typeof r.at === 'string' &&
    (r.reason === null || typeof r.reason === 'string') &&
    (by === null ||
      (typeof by === 'object' &&
        by !== undefined &&
        typeof by.sub === 'string' &&
        (by.name === null || typeof by.name === 'string')))
  );
}
