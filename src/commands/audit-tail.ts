import { once } from 'node:events';
import type { AuditPage } from '../api/schemas.js';
import type { Context } from '../cli/context.js';
import { ExitCode, InterruptedError, JitError, UsageError } from '../cli/errors.js';

/**
 * `jitctl audit tail [--follow] [--after SEQ] [--format text|jsonl|ocsf]`: the audit log from a
 * cursor, every event once and in order (auditors). Without `--follow` it prints what follows SEQ
 * and exits; with it, it then waits for new events (a long poll the broker answers as soon as
 * something is appended) until interrupted, riding out broker restarts. Each event is checked
 * against the one before it (the hash chain), so a stream that skips or alters an event stops
 * with exit 1 instead of printing on. Interrupted, it says where to resume (`--after`).
 *
 * Formats: `text` (a line per event, other people's text made safe), `jsonl` (each event as
 * `GET /v1/audit` gives it, with `seq`, `prev_hash`, `hash`), `ocsf` (OCSF 1.8.0 events,
 * src/api/audit-ocsf.ts). Events go to stdout; outages and where to resume go to stderr.
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  follow?: boolean | undefined;
  after?: string | undefined;
  format?: string | undefined;
}

const FORMATS = ['text', 'jsonl', 'ocsf'] as const;
type Format = (typeof FORMATS)[number];

export async function run(options: Options, ctx: Context): Promise<number> {
  const format = (options.format ?? 'text') as Format;
  if (!FORMATS.includes(format))
    throw new UsageError(`--format ${JSON.stringify(options.format)}: give text, jsonl or ocsf`, {
      hint: 'jsonl is one event per line with seq, prev_hash and hash; ocsf is for SIEMs',
    });
  const after = seqOf(options.after);
  const [{ withConnection }, { followAudit }, { ChainVerifier }, view] = await Promise.all([
    import('../cli/connect.js'),
    import('../client/follow-audit.js'),
    import('../api/audit-chain.js'),
    loadFormatter(format),
  ]);

  let last = after;
  // From the first event the whole chain is checked; from --after, each event against the last.
  let chain: InstanceType<typeof ChainVerifier> | undefined =
    after === 0 ? new ChainVerifier() : undefined;
  let outage = false;
  const out = ctx.io.stdout;
  try {
    return await withConnection(ctx, options, async ({ client, server }) => {
      await followAudit(client, {
        clock: ctx.clock,
        after,
        follow: options.follow === true,
        withRequests: format === 'ocsf',
        signal: ctx.interruptSignal(),
        onUnreachable: (reason) => {
          outage = true;
          ctx.io.err(`broker unreachable, retrying… (${reason}; Ctrl-C stops)\n`);
        },
        onReachable: () => {
          if (outage) ctx.io.err(`broker reachable again; following after event ${last}\n`);
          outage = false;
        },
        onEvents: async (page: AuditPage) => {
          let text = '';
          for (const e of page.items) {
            chain ??= new ChainVerifier({ seq: after, hash: e.prev_hash, count: 0 });
            if (!chain.push(e)) {
              if (text) await write(out, text);
              const p = chain.problem!;
              throw new JitError(`the audit log is broken at event ${p.seq}: ${p.reason}`, 1, {
                hint: `events up to ${last} were printed; check the log with \`jitctl audit verify\``,
              });
            }
            text += `${view(e, page, server)}\n`;
            last = e.seq;
          }
          await write(out, text);
        },
      });
      return ExitCode.Ok;
    });
  } catch (err) {
    if (err instanceof InterruptedError && options.follow)
      ctx.io.err(
        last > 0
          ? `stopped after event ${last}; resume with: jitctl audit tail --follow --after ${last}\n`
          : 'stopped before any event\n',
      );
    throw err;
  }
}

function seqOf(value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw new UsageError(
      `--after ${JSON.stringify(value)}: give an event's sequence number (a whole number, 0 for the start)`,
    );
  return Number(value);
}

type Formatter = (e: AuditPage['items'][number], page: AuditPage, server: string) => string;

/** Each format's code loads only when asked for (OCSF's table is not needed for text). */
async function loadFormatter(format: Format): Promise<Formatter> {
  if (format === 'text') {
    const { auditLine } = await import('../cli/audit-view.js');
    return (e) => auditLine(e);
  }
  const { jsonLine } = await import('../api/json-line.js');
  if (format === 'jsonl') return (e) => jsonLine(e);
  const { toOcsf } = await import('../api/audit-ocsf.js');
  return (e, page, server) =>
    jsonLine(
      toOcsf(e, {
        broker: server,
        request: e.request_id ? page.requests?.[e.request_id] : undefined,
      }),
    );
}

/** Writes to stdout, waiting when the reader is slower than the log (no unbounded buffering). */
async function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (text && !out.write(text)) await once(out, 'drain');
}
