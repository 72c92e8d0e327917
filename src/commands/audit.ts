import { availableParallelism } from 'node:os';
import type { LogFacts } from '../api/audit-checkpoint.js';
import type { Opened } from '../cli/audit-checkpoints.js';
import { auditActor, auditDetails, auditTime } from '../cli/audit-view.js';
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
 *
 * With `--checkpoints FILE|DIR` it also proves the log still extends every signed checkpoint kept
 * there (src/api/audit-checkpoint.ts): a log rewritten from an earlier point, whose own chain is
 * consistent, no longer has a checkpoint's hash at its seq, and the checkpoint is named. Keys are
 * trusted from `--jwks FILE` or the broker's JWKS, and through the log for retired keys.
 */
export interface Options {
  action: 'verify' | 'list';
  server?: string | undefined;
  store?: string | undefined;
  db?: string | undefined;
  after?: string | undefined;
  limit?: string | undefined;
  json?: boolean | undefined;
  checkpoints?: string | undefined;
  jwks?: string | undefined;
}

interface Verdict {
  ok: boolean;
  events: number;
  head: string;
  problem?: { seq: number; reason: string };
  workerThreads?: number;
  /** With --checkpoints: the hashes and key events the checkpoints are judged against. */
  facts?: LogFacts;
}

/** What the walk must note for the checkpoints: hashes at their seqs, and the log's keys. */
interface Wanted {
  seqs: number[];
  keyEvents: boolean;
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  if (options.action === 'list') return list(options, ctx);
  if (options.jwks && !options.checkpoints)
    throw new UsageError('--jwks goes with --checkpoints', {
      hint: 'jitctl audit verify --checkpoints DIR --jwks jwks.json',
    });
  // Checkpoints and keys first: a wrong path or an unreachable broker fails before a long walk.
  let checks: { opened: Opened[]; anchors: Awaited<ReturnType<typeof trustAnchorsOf>> } | undefined;
  let opening: Promise<Opened[]> | undefined;
  let wanted: Wanted | undefined;
  if (options.checkpoints) {
    const [cp, { peekCheckpoint }] = await Promise.all([
      import('../cli/audit-checkpoints.js'),
      import('../api/audit-checkpoint.js'),
    ]);
    const found = await cp.findCheckpoints(options.checkpoints);
    if (found.length === 0)
      throw new JitError(`found no checkpoints in ${options.checkpoints}`, ExitCode.Error, {
        hint: 'checkpoints are the "audit.checkpoint" records of the audit sinks, or answers of GET /v1/audit/checkpoint',
      });
    const anchors = await trustAnchorsOf(ctx, options);
    // What to note during the walk comes from what the checkpoints say; their signatures are
    // checked meanwhile (a year of hourly checkpoints is seconds of ES256), judged after.
    const said = found.flatMap((f) => peekCheckpoint(f.jws) ?? []);
    wanted = {
      seqs: [...new Set(said.map((c) => c.seq))],
      keyEvents: said.some((c) => !anchors.kids.has(c.kid)),
    };
    opening = cp.openAll(found);
    opening.catch(() => {});
    checks = { opened: [], anchors };
  }
  const verdict = options.db
    ? await verifyDatabase(options.db, verifyThreads(ctx), wanted)
    : await verifyApi(options, ctx, wanted);
  if (checks && opening) checks.opened = await opening;
  if (ctx.debug && verdict.workerThreads !== undefined) {
    ctx.io.err(`debug: audit verify walked ${verdict.workerThreads} ranges on worker threads\n`);
  }
  let ok = verdict.ok;
  let checked: { json: Record<string, unknown>; text: string } | undefined;
  if (checks) {
    const [{ judgeCheckpoints }, { describeVerdicts }] = await Promise.all([
      import('../api/audit-checkpoint.js'),
      import('../cli/audit-checkpoints.js'),
    ]);
    const verdicts = judgeCheckpoints(checks.opened, checks.anchors.kids, verdict.facts!);
    const described = describeVerdicts(verdicts, checks.anchors);
    ok &&= described.ok;
    checked = {
      text: described.text,
      json: {
        ok: described.ok,
        keys: checks.anchors.from,
        verified: verdicts.filter((v) => v.status === 'ok').length,
        failed: verdicts.filter((v) => v.status !== 'ok'),
      },
    };
  }
  if (options.json) {
    printJson(ctx.io, {
      ok,
      events: verdict.events,
      head: verdict.head,
      ...(verdict.problem
        ? { bad_event: verdict.problem.seq, reason: verdict.problem.reason }
        : {}),
      ...(checked ? { checkpoints: checked.json } : {}),
    });
  } else {
    if (verdict.ok) {
      ctx.io.out(`ok: ${verdict.events} events, chain intact, head ${verdict.head}\n`);
    } else {
      const p = verdict.problem!;
      ctx.io.out(
        `broken: event ${p.seq}: ${p.reason}\n` +
          `(${verdict.events} events before it verify; the last good hash is ${verdict.head})\n`,
      );
    }
    if (checked) ctx.io.out(checked.text);
  }
  return ok ? ExitCode.Ok : ExitCode.Error;
}

/**
 * Threads for `verify --db`: every core (a million events is seconds of hashing), or
 * JITCTL_VERIFY_THREADS to leave cores to a broker on the same host.
 */
function verifyThreads(ctx: Context): number {
  const raw = ctx.env.JITCTL_VERIFY_THREADS;
  if (raw === undefined || raw === '') return availableParallelism();
  const n = wholeNumber(raw, 'JITCTL_VERIFY_THREADS', 1, 64);
  return n ?? availableParallelism();
}

async function trustAnchorsOf(ctx: Context, options: Options) {
  const { trustAnchors } = await import('../cli/audit-checkpoints.js');
  return trustAnchors(ctx, options);
}

async function verifyDatabase(url: string, threads: number, wanted?: Wanted): Promise<Verdict> {
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
    const result: Verdict = await verifyAuditTable(db, { threads });
    if (wanted) {
      // Every event up to the last good one chained, so seqs run 1…events without a gap.
      const { hashesAt, keyEventsUpTo } = await import('../server/store/audit-stream.js');
      const lastGoodSeq = result.events;
      const hashes = await hashesAt(
        db.kysely,
        wanted.seqs.filter((s) => s <= lastGoodSeq),
      );
      result.facts = {
        lastGoodSeq,
        brokenAt: result.problem?.seq,
        hashAt: (seq) => hashes.get(seq),
        keyEvents: wanted.keyEvents ? await keyEventsUpTo(db.kysely, lastGoodSeq) : [],
      };
    }
    return result;
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

async function verifyApi(options: Options, ctx: Context, wanted?: Wanted): Promise<Verdict> {
  const [{ withConnection }, { ChainVerifier }, { keysNamedBy }] = await Promise.all([
    import('../cli/connect.js'),
    import('../api/audit-chain.js'),
    import('../api/audit-checkpoint.js'),
  ]);
  return withConnection(ctx, options, async ({ client }): Promise<Verdict> => {
    const verifier = new ChainVerifier();
    const seqs = new Set(wanted?.seqs);
    const hashes = new Map<number, string>();
    const keyEvents: { seq: number; kid: string }[] = [];
    const done = (v: Omit<Verdict, 'facts'>): Verdict =>
      wanted
        ? {
            ...v,
            facts: {
              lastGoodSeq: verifier.point.seq,
              brokenAt: v.problem?.seq,
              hashAt: (seq) => hashes.get(seq),
              keyEvents,
            },
          }
        : v;
    let after = 0;
    for (;;) {
      const page = await client.audit({ after, limit: 1000 });
      for (const event of page.items) {
        if (!verifier.push(event)) {
          return done({
            ok: false,
            events: verifier.count,
            head: verifier.lastHash,
            problem: verifier.problem!,
          });
        }
        if (seqs.has(event.seq)) hashes.set(event.seq, event.hash);
        for (const kid of keysNamedBy(event.type, event.data))
          keyEvents.push({ seq: event.seq, kid });
      }
      if (page.next_after === null || page.items.length === 0) break;
      after = page.next_after;
    }
    return done({ ok: true, events: verifier.count, head: verifier.lastHash });
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
        auditTime(e),
        safe(e.type),
        safe(e.request_id ?? '-'),
        auditActor(e),
        auditDetails(e),
      ]),
    ),
  );
  if (page.next_after !== null) {
    ctx.io.err(`more: jitctl audit list --after ${page.next_after}\n`);
  }
  return ExitCode.Ok;
}
