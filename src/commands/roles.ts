import type { RoleSummary } from '../api/schemas.js';
import { rememberRoles } from '../cli/broker-cache.js';
import { type ConnectOptions, withConnection } from '../cli/connect.js';
import type { Context } from '../cli/context.js';
import { printJson, safe, table } from '../cli/output.js';

/**
 * `jitctl roles [--all] [--json]`: the roles of the broker's policy that you may request or review
 * (every role with --all), with what asking for each takes: durations, approvals, step-up. The
 * way to find a role's name before `jitctl request` (as `tsh request search` or Granted's list).
 */
export interface Options extends ConnectOptions {
  all?: boolean | undefined;
  json?: boolean | undefined;
}

const HEADERS = ['role', 'you may', 'duration', 'approvals', 'step-up', 'description'];

export async function run(options: Options, ctx: Context): Promise<number> {
  const { roles } = await withConnection(ctx, options, async (conn) => {
    const answer = await conn.client.roles();
    // For completion and hints (src/cli/broker-cache.ts).
    await rememberRoles(ctx, conn.server, answer.roles);
    return answer;
  });
  const shown = options.all
    ? roles
    : roles.filter((r) => r.can_request || r.can_review || r.access_removed);
  if (options.json) {
    printJson(ctx.io, shown);
    return 0;
  }
  if (shown.length === 0) {
    ctx.io.err(
      options.all
        ? 'the broker has no roles\n'
        : `no role you may request or review (${roles.length} in the policy; --all lists them)\n`,
    );
    return 0;
  }
  ctx.io.out(table(ctx.io, HEADERS, shown.map(row)));
  for (const r of shown) {
    if (r.access_removed) ctx.io.err(`${safe(r.name)}: ${safe(r.access_removed)}\n`);
  }
  return 0;
}

function row(r: RoleSummary): string[] {
  const may = [
    r.can_request && 'request',
    r.access_removed && 'not request (removed by an access review)',
    r.can_review && 'review',
  ]
    .filter(Boolean)
    .join(', ');
  const approvals =
    r.approvals === 0
      ? 'none (granted on request)'
      : r.approvals_by
        ? r.approvals_by.map((g) => `${g.count} of ${safe(g.from)}`).join(' + ')
        : `${r.approvals} of ${r.approvers.map(safe).join(', ')}`;
  // The lifecycle's options, where the role has them: extensions, break-glass, approval rules.
  const extras = [
    r.extend ? `extendable by ${safe(r.extend.max_total)}` : '',
    r.break_glass && r.can_request ? 'break-glass' : '',
    r.rules && r.rules.length > 0 ? `${r.rules.length} rule${r.rules.length === 1 ? '' : 's'}` : '',
  ].filter(Boolean);
  return [
    safe(r.name),
    may || '-',
    `${safe(r.default_duration)}, max ${safe(r.max_duration)}${extras.length > 0 ? ` (${extras.join(', ')})` : ''}`,
    approvals,
    r.step_up ? `${safe(r.step_up.acr)} within ${safe(r.step_up.max_age)}` : '-',
    safe(r.description) || '-',
  ];
}
