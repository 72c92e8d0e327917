import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  CheckpointError,
  type CheckpointFound,
  type CheckpointVerdict,
  type KeyCache,
  openCheckpoint,
  type SignedCheckpoint,
} from '../api/audit-checkpoint.js';
import type { Context } from './context.js';
import { AuthError, JitError, UnreachableError, UsageError } from './errors.js';
import { safe } from './output.js';

/**
 * `jitctl audit verify --checkpoints FILE|DIR`: finding the checkpoints kept outside the broker
 * (a sink's JSON-lines or OCSF files, HEC or webhook dumps, saved `GET /v1/audit/checkpoint`
 * answers, bare JWS files), the keys to trust (a saved JWKS, or the broker's fetched now), and
 * how the verdicts read. The judging itself is src/api/audit-checkpoint.ts.
 */

export type Opened =
  | { found: CheckpointFound; checkpoint: SignedCheckpoint }
  | { found: CheckpointFound; error: string };

const COMPACT_JWS = /^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_FILES = 100_000;
/** A whole file is parsed as one JSON document (a pretty-printed answer) up to this size. */
const WHOLE_JSON_BYTES = 1 << 20;

/** Every `jws` string in a JSON value, a few levels deep (records, wrappers, batches). */
function jwsIn(value: unknown, depth = 0, out: string[] = []): string[] {
  if (depth > 5 || value === null || typeof value !== 'object') return out;
  if (Array.isArray(value)) {
    for (const v of value) jwsIn(v, depth + 1, out);
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k === 'jws' && typeof v === 'string') out.push(v);
    else if (typeof v === 'object') jwsIn(v, depth + 1, out);
  }
  return out;
}

async function scanFile(path: string, label: string, found: CheckpointFound[]): Promise<void> {
  const before = found.length;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const raw of lines) {
    n++;
    // Cheap test first: a JWS's protected header is base64url JSON, which starts with "eyJ".
    if (!raw.includes('eyJ')) continue;
    const line = raw.trim();
    if (COMPACT_JWS.test(line)) {
      found.push({ source: `${label}:${n}`, jws: line });
      continue;
    }
    if (!line.startsWith('{') && !line.startsWith('[')) continue;
    try {
      for (const jws of jwsIn(JSON.parse(line))) found.push({ source: `${label}:${n}`, jws });
    } catch {}
  }
  if (found.length > before) return;
  // A pretty-printed JSON document (an answer saved with an indenting tool).
  if ((await stat(path)).size <= WHOLE_JSON_BYTES) {
    try {
      const doc = JSON.parse(await readFile(path, 'utf8')) as unknown;
      for (const jws of jwsIn(doc)) found.push({ source: label, jws });
    } catch {}
  }
}

/** The checkpoints in FILE, or in every file under DIR; the same checkpoint found twice counts once. */
export async function findCheckpoints(path: string): Promise<CheckpointFound[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (err) {
    throw new UsageError(
      `--checkpoints ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
    );
  }
  const files: { path: string; label: string }[] = [];
  if (info.isDirectory()) {
    const walk = async (dir: string, label: string, depth: number) => {
      if (depth > 8) return;
      const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
        a.name.localeCompare(b.name),
      );
      for (const e of entries) {
        if (files.length >= MAX_FILES) return;
        const p = join(dir, e.name);
        const l = join(label, e.name);
        if (e.isDirectory()) await walk(p, l, depth + 1);
        else if (e.isFile()) files.push({ path: p, label: l });
      }
    };
    await walk(path, path, 0);
  } else files.push({ path, label: path });
  const found: CheckpointFound[] = [];
  for (const f of files) {
    try {
      await scanFile(f.path, f.label, found);
    } catch (err) {
      throw new JitError(
        `cannot read ${f.label}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const seen = new Set<string>();
  return found.filter((f) => {
    const key = f.jws.trim();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Each checkpoint's form and signature, checked against the key in its own header. */
export async function openAll(found: readonly CheckpointFound[]): Promise<Opened[]> {
  const keys: KeyCache = new Map();
  return Promise.all(
    found.map(async (f): Promise<Opened> => {
      try {
        return { found: f, checkpoint: await openCheckpoint(f.jws, keys) };
      } catch (err) {
        if (err instanceof CheckpointError) return { found: f, error: err.message };
        throw err;
      }
    }),
  );
}

/** The keys a verdict may trust, and where they came from (said in the output). */
export interface Anchors {
  kids: Set<string>;
  from: string;
}

async function thumbprints(doc: unknown, where: string): Promise<Set<string>> {
  const { calculateJwkThumbprint } = await import('jose');
  const keys = Array.isArray(doc)
    ? doc
    : doc && typeof doc === 'object' && Array.isArray((doc as { keys?: unknown }).keys)
      ? (doc as { keys: unknown[] }).keys
      : doc && typeof doc === 'object' && 'kty' in doc
        ? [doc]
        : undefined;
  if (!keys || keys.length === 0 || keys.length > 100)
    throw new JitError(`${where} is not a JWKS (a JSON object with "keys": [...])`, 1, {
      hint: "save the broker's keys with: curl -fsS https://BROKER/.well-known/jwks.json > jwks.json",
    });
  const kids = new Set<string>();
  for (const k of keys) {
    if (!k || typeof k !== 'object' || typeof (k as { kty?: unknown }).kty !== 'string')
      throw new JitError(`${where} holds an entry that is not a JWK`);
    if ('d' in k)
      throw new JitError(`${where} holds a private key`, 1, {
        hint: 'give the public JWKS (/.well-known/jwks.json), never a private key',
      });
    try {
      kids.add(await calculateJwkThumbprint(k as Parameters<typeof calculateJwkThumbprint>[0]));
    } catch (err) {
      throw new JitError(`${where} holds a key jitctl cannot read: ${(err as Error).message}`);
    }
  }
  return kids;
}

/**
 * The trust anchors: the keys of a saved JWKS (`--jwks`, for verifying offline or from before a
 * key was retired), else the broker's JWKS fetched now (--server, JITCTL_SERVER or the broker
 * signed in to).
 */
export async function trustAnchors(
  ctx: Context,
  opts: { jwks?: string | undefined; server?: string | undefined },
): Promise<Anchors> {
  if (opts.jwks) {
    let text: string;
    try {
      text = await readFile(opts.jwks, 'utf8');
    } catch (err) {
      throw new UsageError(
        `--jwks ${opts.jwks}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new JitError(`--jwks ${opts.jwks} is not JSON`);
    }
    return {
      kids: await thumbprints(doc, `--jwks ${opts.jwks}`),
      from: `the saved JWKS ${opts.jwks}`,
    };
  }
  const { resolveServer } = await import('./config.js');
  let server: string;
  try {
    server = await resolveServer(ctx, opts.server);
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    throw new UsageError('--checkpoints needs the keys to trust', {
      hint: "give --jwks FILE (a saved copy of the broker's /.well-known/jwks.json) or --server URL to fetch them",
    });
  }
  const url = `${server}/.well-known/jwks.json`;
  let body: string;
  try {
    const res = await fetch(url, {
      signal: AbortSignal.any([ctx.interruptSignal(), AbortSignal.timeout(15_000)]),
    });
    body = await res.text();
    if (res.status !== 200)
      throw new JitError(`${url} answered HTTP ${res.status}`, 1, {
        hint: 'is --server the URL of a jitctl broker?',
      });
  } catch (err) {
    if (err instanceof JitError) throw err;
    throw new UnreachableError(`cannot fetch the broker's keys from ${url}`, {
      hint: 'check --server, or verify offline with --jwks FILE',
      cause: err,
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new JitError(`${url} did not answer with JSON`);
  }
  return { kids: await thumbprints(doc, url), from: `the broker's JWKS at ${url}` };
}

const short = (kid: string) => `${kid.slice(0, 12)}…`;

/** What the checkpoint verdicts say, for people: failures first, then the summary. */
export function describeVerdicts(
  verdicts: readonly CheckpointVerdict[],
  anchors: Anchors,
): { ok: boolean; text: string } {
  const ok = verdicts.filter((v) => v.status === 'ok');
  const lines: string[] = [];
  for (const v of verdicts) {
    if (v.status === 'refused') {
      lines.push(`refused: checkpoint ${safe(v.source)} ${safe(v.reason)}`);
    } else if (v.status === 'broken') {
      lines.push(
        `broken: the log does not extend checkpoint ${safe(v.source)} (event ${v.seq}, signed ${safe(v.signed_at)}, key ${short(v.kid)}): ${safe(v.reason)}`,
      );
      const before = ok.filter((o) => o.seq < v.seq).sort((a, b) => b.seq - a.seq)[0];
      lines.push(
        before
          ? `  (it was changed after event ${before.seq}, which checkpoint ${safe(before.source)} still matches, and at or before event ${v.seq})`
          : `  (it was changed at or before event ${v.seq}; no earlier checkpoint matches)`,
      );
    }
  }
  if (lines.length === 0) {
    const latest = [...ok].sort((a, b) => b.seq - a.seq)[0]!;
    const viaLog = ok.filter((v) => v.trust === 'log').length;
    lines.push(
      `ok: ${ok.length} checkpoint${ok.length === 1 ? '' : 's'} verified, the latest at event ${latest.seq} (signed ${safe(latest.signed_at)}); the log extends every one`,
      `  keys trusted: ${safe(anchors.from)}${viaLog > 0 ? `, and ${viaLog === 1 ? 'one checkpoint' : `${viaLog} checkpoints`} by keys the log records` : ''}`,
    );
  }
  return {
    ok: lines.length > 0 && verdicts.every((v) => v.status === 'ok'),
    text: `${lines.join('\n')}\n`,
  };
}
