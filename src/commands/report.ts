import { REPORT_FORMATS, type ReportFormat } from '../api/governance.js';
import type { Context } from '../cli/context.js';
import { ExitCode, JitError, UsageError } from '../cli/errors.js';
import { safe } from '../cli/output.js';

/**
 * `jitctl report [--since 30d] [--role R] [--format text|md|html|csv|json] [--output FILE]`: the
 * access report (docs/governance.md "Reports"). The broker computes it (`GET /v1/reports`, as
 * JSON); the formats are drawn here by the same renderer the auditors' page uses. The report
 * names people, so a file it writes is private to you (0600).
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  since?: string | undefined;
  role?: string | undefined;
  frequent?: string | undefined;
  format?: string | undefined;
  output?: string | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const format = (options.format ?? 'text') as ReportFormat;
  if (!REPORT_FORMATS.includes(format))
    throw new UsageError(
      `--format ${JSON.stringify(safe(options.format ?? ''))}: give one of ${REPORT_FORMATS.join(', ')}`,
    );
  const [{ withConnection }, { fetchReport }] = await Promise.all([
    import('../cli/connect.js'),
    import('../client/governance.js'),
  ]);
  const report = await withConnection(ctx, options, ({ client }) =>
    fetchReport(client, { since: options.since, role: options.role, frequent: options.frequent }),
  );
  const { renderReport } = await import('../server/governance/report/render.js');
  const out = renderReport(report, format);
  if (options.output === undefined || options.output === '-') {
    // Text and Markdown are made safe line by line (names and reasons are other people's text,
    // and a control character in them could rewrite the terminal); JSON escapes its own.
    ctx.io.out(
      format === 'text' || format === 'md'
        ? out.body
            .split('\n')
            .map((line) => safe(line))
            .join('\n')
        : out.body,
    );
    return ExitCode.Ok;
  }
  const { open } = await import('node:fs/promises');
  try {
    // `mode` applies only to a new file: an existing one that others may read is made private
    // before the report goes in (a pipe or a device is left as it is).
    const file = await open(options.output, 'w', 0o600);
    try {
      const st = await file.stat();
      if (st.isFile() && (st.mode & 0o077) !== 0) await file.chmod(0o600);
      await file.writeFile(out.body);
    } finally {
      await file.close();
    }
  } catch (err) {
    throw new JitError(`cannot write ${safe(options.output)}: ${(err as Error).message}`, 1, {
      hint: 'give a writable path to --output',
    });
  }
  ctx.io.err(
    `wrote the ${format} report (${report.period}, ${report.roles.length} roles, ${report.findings.length} findings) to ${safe(options.output)}\n`,
  );
  return ExitCode.Ok;
}
