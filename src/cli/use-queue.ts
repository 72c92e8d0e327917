import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UseReport } from '../api/grant.js';
import type { Context } from './context.js';

/**
 * Reports of commands run under a grant that could not reach the broker (src/cli/grant-session.ts)
 * wait here, one file each, until a later `jitctl exec` or `shell` sends them: a broker that was
 * down for a while leaves a gap in "who ran what" that closes, late but whole, and the reports say
 * when they were queued. They hold no secret: the command is already cut to the role's
 * `audit_commands` and redacted, and no token is ever part of a report. Still private (0600 in a
 * 0700 directory): they say what ran where.
 */

export interface QueuedUse {
  server: string;
  requestId: string;
  report: UseReport;
}

/** At most this many are sent by one command; the rest wait for the next. */
export const MAX_QUEUED = 200;

export function queueDir(ctx: Context): string {
  return join(ctx.paths.stateDir, 'uses');
}

/** Writes a report down for later; returns the file. */
export async function queueUse(ctx: Context, use: QueuedUse): Promise<string> {
  const dir = queueDir(ctx);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (!info.isDirectory() || (info.mode & 0o077) !== 0)
    throw new Error(`${dir} must be a directory only you can read (chmod 700 ${dir})`);
  const name = `${Date.now().toString().padStart(15, '0')}-${randomBytes(6).toString('hex')}.json`;
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(use), { mode: 0o600, flag: 'wx' });
  return file;
}

/** The reports waiting for `server`, oldest first (at most `limit`). */
export async function queuedUses(
  ctx: Context,
  server: string,
  limit = MAX_QUEUED,
): Promise<{ file: string; use: QueuedUse }[]> {
  let names: string[];
  try {
    names = (await readdir(queueDir(ctx))).filter((n) => /^\d{15}-[0-9a-f]{12}\.json$/.test(n));
  } catch {
    return [];
  }
  names.sort();
  const out: { file: string; use: QueuedUse }[] = [];
  for (const name of names) {
    if (out.length >= limit) break;
    const file = join(queueDir(ctx), name);
    try {
      const use = JSON.parse(await readFile(file, 'utf8')) as QueuedUse;
      if (use.server === server && typeof use.requestId === 'string' && use.report)
        out.push({ file, use });
    } catch {
      // unreadable or half-written: left alone
    }
  }
  return out;
}

export async function dropQueued(file: string): Promise<void> {
  await rm(file, { force: true });
}
