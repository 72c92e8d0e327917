import { availableParallelism } from 'node:os';
import type { AuditEvent } from '../api/schemas.js';
import type { Context } from '../cli/context.js';
import { ExitCode, JitError, UsageError } from '../cli/errors.js';
import { printJson, safe, table } from '../cli/output.js';

/**
 * `jitctl audit verify` and `jitctl audit list`.
 *
 * verify walks the hash chain (src/api/audit-chain.ts) and names the first event that does not
 * chain. With `--db` it reads the database directly, as an operator with database access would
 * (and checks the head row, so a log cut off at its end is caught too); without it, it walks
 * `GET /v1/audit` as a signed-in auditor. The verdict is the command's data, so it goes to stdout
 * (`--json` for scripts); a broken chain exits 1.
 */
export interface Options {
  action: 'verify' | 'list';
  server?: string | undefined;
  store?: string | undefined;
  db?: string | undefined;
  after?: string | undefined;
  limit?: string | undefined;
  json?: boolean | undefined;
}

interface Verdict {
  ok: boolean;
  events: number;
  head: string;
  problem?: { seq: number; reason: string };
  workerThreads?: number;
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  if (options.action === 'list') return list(options, ctx);
  const verdict = options.db
    ? await verifyDatabase(options.db, verifyThreads(ctx))
    : await verifyApi(options, ctx);
  if (ctx.debug && verdict.workerThreads !== undefined) {
    ctx.io.err(`debug: audit verify walked ${verdict.workerThreads} ranges on worker threads\n`);
  }
  if (options.json) {
    printJson(ctx.io, {
      ok: verdict.ok,
      events: verdict.events,
      head: verdict.head,
      ...(verdict.problem
        ? { bad_event: verdict.problem.seq, reason: verdict.problem.reason }
        : {}),
    });
  } else if (verdict.ok) {
    ctx.io.out(`ok: ${verdict.events} events, chain intact, head ${verdict.head}\n`);
  } else {
    const p = verdict.problem!;
    ctx.io.out(
      `broken: event ${p.seq}: ${p.reason}\n` +
        `(${verdict.events} events before it verify; the last good hash is ${verdict.head})\n`,
    );
  }
  return verdict.ok ? ExitCode.Ok : ExitCode.Error;
}

/**
 * Threads for `verify --db` on SQLite: every core (a million events is seconds of hashing), or
 * JITCTL_VERIFY_THREADS to leave cores to a broker on the same host.
 */
function verifyThreads(ctx: Context): number {
  const raw = ctx.env.JITCTL_VERIFY_THREADS;
  if (raw === undefined || raw === '') return availableParallelism();
  const n = wholeNumber(raw, 'JITCTL_VERIFY_THREADS', 1, 64);
  return n ?? availableParallelism();
}

async function verifyDatabase(url: string, threads: number): Promise<Verdict> {
  const [
    { openDatabase, parseDatabaseUrl, DatabaseUrlError, isDatabaseError },
    { verifyAuditTable },
  ] = await Promise.all([import('../server/store/database.js'), import('../server/audit/log.js')]);
  let target: ReturnType<typeof parseDatabaseUrl>;
  try {
    target = parseDatabaseUrl(url, process.cwd());
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new UsageError(`--db: ${err.message}`);
    throw err;
  }
  let db: Awaited<ReturnType<typeof openDatabase>>;
  try {
    db = await openDatabase(target, { readonly: true, poolSize: 1 });
  } catch (err) {
    throw new JitError((err as Error).message, ExitCode.Error, {
      hint: 'check the path or URL given to --db',
    });
  }
  try {
    return await verifyAuditTable(db, { threads });
  } catch (err) {
    if (isDatabaseError(err)) {
      const message = (err as Error).message;
      throw new JitError(
        /no such table|does not exist/.test(message)
          ? `${db.description} holds no jitctl audit log`
          : `cannot read the audit log in ${db.description}: ${message}`,
        ExitCode.Error,
        { hint: 'point --db at the broker database (the same value as the broker db setting)' },
      );
    }
    throw err;
  } finally {
    await db.close();
  }
}

async function verifyApi(options: Options, ctx: Context): Promise<Verdict> {
  const [{ withConnection }, { ChainVerifier }] = await Promise.all([
    import('../cli/connect.js'),
    import('../api/audit-chain.js'),
  ]);
  return withConnection(ctx, options, async ({ client }): Promise<Verdict> => {
    const verifier = new ChainVerifier();
    let after = 0;
    for (;;) {
      const page = await client.audit({ after, limit: 1000 });
      for (const event of page.items) {
        if (!verifier.push(event)) {
          return {
            ok: false,
            events: verifier.count,
            head: verifier.lastHash,
            problem: verifier.problem!,
          };
        }
      }
      if (page.next_after === null || page.items.length === 0) break;
      after = page.next_after;
    }
    return { ok: true, events: verifier.count, head: verifier.lastHash };
  });
}

function wholeNumber(value: string | undefined, flag: string, min: number, max: number) {
  if (value === undefined) return undefined;
  if (!/^\d{1,16}$/.test(value) || Number(value) < min || Number(value) > max)
    throw new UsageError(
      `${flag} ${JSON.stringify(value)}: give a whole number from ${min} to ${max}`,
    );
  return Number(value);
}

async function list(options: Options, ctx: Context): Promise<number> {
  const after = wholeNumber(options.after, '--after', 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const limit = wholeNumber(options.limit, '--limit', 1, 1000) ?? 100;
  const { withConnection } = await import('../cli/connect.js');
  const page = await withConnection(ctx, options, ({ client }) => client.audit({ after, limit }));
  if (options.json) {
    printJson(ctx.io, page);
    return ExitCode.Ok;
  }
  if (page.items.length === 0) {
    ctx.io.err(after > 0 ? `no audit events after ${after}\n` : 'the audit log is empty\n');
    return ExitCode.Ok;
  }
  ctx.io.out(
    table(
      ctx.io,
      ['seq', 'at', 'type', 'request', 'actor', 'details'],
      page.items.map((e) => [
        String(e.seq),
        safe(e.at.replace(/\.\d{3}Z$/, 'Z')),
        safe(e.type),
        safe(e.request_id ?? '-'),
        e.actor ? safe(e.actor.name ?? e.actor.sub) : '(broker)',
        details(e),
      ]),
    ),
  );
  if (page.next_after !== null) {
    ctx.io.err(`more: jitctl audit list --after ${page.next_after}\n`);
  }
  return ExitCode.Ok;
}

/** `key=value` pairs of an event's data, made safe for the terminal. */
function details(e: AuditEvent): string {
  return Object.entries(e.data)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${safe(k)}=${safe(typeof v === 'string' ? v : JSON.stringify(v))}`)
    .join(' ');
}
