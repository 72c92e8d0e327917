import { docPath } from '../api/docs.js';
import type { Context } from '../cli/context.js';
import { ExitCode, UsageError } from '../cli/errors.js';
import { printJson, safe, style, table } from '../cli/output.js';
import type { NotifyTarget, Policy, PolicyIssue, RoleDescription } from '../server/policy/index.js';

/**
 * `jitctl policy check FILE`: the broker's own validation, run before deploying a policy (in CI,
 * or in an editor's save hook). Problems print as `file:line:col: path: message`, the format
 * compilers use, so editors and CI annotations find the line. `-` reads the policy from stdin.
 */
export interface Options {
  file: string;
  json?: boolean;
  /** `--as user:alice`: explain which rule would decide this person's request (with --role). */
  as?: string | undefined;
  group?: string[] | undefined;
  role?: string | undefined;
  at?: string | undefined;
  for?: string | undefined;
  ticket?: string | undefined;
  /** true/false: say whether they are on call; absent: read the policy's on-call file. */
  onCall?: boolean | undefined;
}

const STDIN_NAME = '<stdin>';

export async function run(options: Options, ctx: Context): Promise<number> {
  // The parser (and yaml) load only for this command, never for `jitctl --version`.
  const policy = await import('../server/policy/index.js');
  const file = options.file === '-' ? STDIN_NAME : options.file;
  let parsed: Policy;
  try {
    const text =
      options.file === '-'
        ? policy.decodePolicyBytes(await readStdin(ctx, policy.MAX_POLICY_BYTES), STDIN_NAME)
        : await policy.readPolicyText(options.file);
    parsed = policy.parsePolicy(text, file);
  } catch (err) {
    if (!(err instanceof policy.PolicyError)) throw err;
    if (options.json) {
      printJson(ctx.io, { ok: false, file, issues: err.issues });
    } else {
      reportIssues(ctx, file, err.issues, policy.formatPolicyIssue);
    }
    return ExitCode.Error;
  }

  if (options.as !== undefined) return explainFor(ctx, options, parsed, policy);
  if (options.role !== undefined || options.group !== undefined || options.at !== undefined) {
    throw new UsageError('--role, --group and --at go with --as: whose request to explain', {
      hint: 'e.g. jitctl policy check policy.yaml --as user:alice@example.com --group developers --role prod --at 22:00',
    });
  }
  const roles = [...parsed.roles.values()].map(policy.describeRole);
  const notify = parsed.notify.map(describeTarget);
  if (options.json) {
    printJson(ctx.io, { ok: true, file, roles, notify });
    return ExitCode.Ok;
  }
  ctx.io.out(
    table(
      ctx.io,
      ['role', 'requesters', 'approvers', 'approvals', 'max duration', 'step-up', 'reason'],
      roles.map((r) => [
        safe(r.name),
        safe(r.requesters.join(', ')),
        safe(r.approvers.join(', ')),
        r.approvals === 0 ? '0 (auto)' : String(r.approvals),
        r.max_duration,
        r.step_up ? safe(`${r.step_up.acr} within ${r.step_up.max_age}`) : '-',
        r.require_reason ? 'required' : '-',
      ]),
    ),
  );
  ctx.io.err(`${style(ctx.io, 'green', '✔')} ${summaryLine(file, roles, notify)}\n`);
  return ExitCode.Ok;
}

type TargetDescription = ReturnType<typeof describeTarget>;

/** Webhook URLs are secrets (a Slack webhook's path is its credential): origins only. */
function describeTarget(t: NotifyTarget) {
  const filter = { roles: t.roles, events: t.events };
  if (t.kind === 'webhook')
    return {
      kind: t.kind,
      origin: new URL(t.webhook).origin,
      format: t.format,
      secret: t.secret ?? 'default',
      ...filter,
    };
  return {
    kind: t.kind,
    to: t.to.map((r) => (r.kind === 'address' ? r.address : r.kind)),
    ...filter,
  };
}

async function explainFor(
  ctx: Context,
  options: Options,
  parsed: Policy,
  policy: typeof import('../server/policy/index.js'),
): Promise<number> {
  const { explain, explanationText } = await import('../cli/policy-explain.js');
  const source = parsed.onCall?.source;
  let onCallEntries = null;
  if (source && options.onCall === undefined) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
      ctx.io.err(
        `note: the on-call list is read from a URL by the broker; pass --on-call (or --no-on-call) to say whether they are on call\n`,
      );
    } else {
      const { dirname, resolve } = await import('node:path');
      const { readFile } = await import('node:fs/promises');
      const { parseOnCall } = await import('../server/on-call.js');
      const base = options.file === '-' ? process.cwd() : dirname(resolve(options.file));
      onCallEntries = async () => {
        try {
          return parseOnCall(await readFile(resolve(base, source), 'utf8')).entries;
        } catch (err) {
          throw new UsageError(
            `the on-call list ${safe(source)} cannot be read: ${safe((err as Error).message)}`,
            {
              hint: 'pass --on-call or --no-on-call instead',
            },
          );
        }
      };
    }
  }
  const e = await explain(
    policy,
    parsed,
    options as Parameters<typeof explain>[2],
    ctx.clock.now(),
    onCallEntries,
  );
  if (options.json) printJson(ctx.io, { ok: true, file: options.file, explanation: e });
  else ctx.io.out(explanationText(e));
  return ExitCode.Ok;
}

function summaryLine(file: string, roles: RoleDescription[], notify: TargetDescription[]): string {
  const n = roles.length;
  let line = `${safe(file)} is a valid policy: ${n} role${n === 1 ? '' : 's'}`;
  if (notify.length > 0) {
    const where = notify.map((t) =>
      'origin' in t ? safe(t.origin) : `email (${safe(t.to.join(', '))})`,
    );
    line += `, events to ${where.join(', ')}`;
  }
  return line;
}

function reportIssues(
  ctx: Context,
  file: string,
  issues: PolicyIssue[],
  format: (issue: PolicyIssue) => string,
): void {
  for (const issue of issues) ctx.io.err(`${safe(format(issue))}\n`);
  // A file that could not be read has one issue (`file: no such file`); a count adds nothing.
  if (issues.some((i) => i.line !== null)) {
    const n = issues.length;
    ctx.io.err(
      `${style(ctx.io, 'red', '✖')} ${safe(file)}: ${n} problem${n === 1 ? '' : 's'} ` +
        `(the policy reference: ${docPath('policy.md')})\n`,
    );
  }
}

/** Bound by the loader's limit plus one byte, so an endless pipe cannot exhaust memory. */
async function readStdin(ctx: Context, limit: number): Promise<Uint8Array> {
  if (ctx.io.stdinIsTTY) {
    throw new UsageError('`-` reads the policy from stdin, which is a terminal', {
      hint: 'pipe a file in (`jitctl policy check - < policy.yaml`) or name the file',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.io.stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    chunks.push(buf);
    size += buf.length;
    if (size > limit) break;
  }
  return Buffer.concat(chunks);
}
