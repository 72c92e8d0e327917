import type { UseRecorded, UseReport } from '../../api/grant.js';
import { commandForAudit, redactText } from '../../api/redact-command.js';
import { appendAudit } from '../audit/log.js';
import type { ServerClock } from '../clock.js';
import { AuditAppendError, badRequest, forbidden, notFound } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Caller, Policy } from '../policy/types.js';
import { REQUEST_ID_PATTERN } from '../requests/ids.js';
import { usePolicyOf } from '../revocation/credentials.js';
import { type Db, isUniqueViolation } from '../store/database.js';
import { getRequest } from '../store/requests.js';

/**
 * Who ran what with which access: `jitctl exec` and `shell` report each command they run under a
 * grant, when it starts and when it ends (`POST /v1/requests/:id/uses`), and the broker audits
 * them as `command.started` and `command.ended` beside the mints of the grant's credentials. The
 * command is kept as the role's `audit_commands` allows, redacted here again whatever the CLI
 * sent, so a modified client cannot put a secret the role keeps out into the audit log.
 *
 * A report may come late: a broker that could not be reached leaves it queued on the person's
 * machine until a later jitctl command sends it. Such a report keeps its own times, says when it
 * was queued, and is marked `late`, so the gap shows in the log. Each use and event is recorded
 * once (`command_uses`), so a report sent again is answered `recorded: false`.
 */

export interface UseDeps {
  db: Db;
  clock: ServerClock;
  metrics: Metrics;
  policy: Policy;
}

/** Later than this after the fact, a report counts as late. */
const LATE_MS = 60_000;

function time(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}T/.test(value))
    throw badRequest(`\`${field}\` must be an RFC 3339 time`);
  return ms;
}

export async function recordUse(
  deps: UseDeps,
  caller: Caller,
  requestId: string,
  report: UseReport,
): Promise<UseRecorded> {
  if (!REQUEST_ID_PATTERN.test(requestId))
    throw notFound(`no request ${JSON.stringify(requestId)}`);
  const row = await getRequest(deps.db.kysely, requestId);
  if (!row) throw notFound(`no request ${requestId}`);
  if (row.requester_iss !== caller.iss || row.requester_sub !== caller.sub)
    throw forbidden('only the requester reports the commands run under their grant');
  const started = time(report.started_at, 'started_at')!;
  const ended = time(report.ended_at, 'ended_at');
  const queued = time(report.queued_at, 'queued_at');
  if (report.event === 'end' && ended === undefined)
    throw badRequest('an `end` report needs `ended_at`');
  const now = deps.clock.now();
  const happened = report.event === 'end' ? ended! : started;
  const use = usePolicyOf(deps.policy.roles.get(row.role));
  const command = report.command ? commandForAudit(report.command, use.auditCommands) : undefined;
  const data: Record<string, unknown> = {
    use_id: report.use_id,
    kind: report.kind,
    role: row.role,
    ...(report.jti ? { jti: report.jti } : {}),
    host: redactText(report.host),
    os_user: redactText(report.os_user),
    cwd: redactText(report.cwd),
    // The role's setting wins over what the client chose to send.
    ...(command ? { command } : {}),
    started_at: new Date(started).toISOString(),
    ...(ended !== undefined ? { ended_at: new Date(ended).toISOString() } : {}),
    ...(ended !== undefined ? { duration_ms: Math.max(0, ended - started) } : {}),
    ...(report.event === 'end' ? { exit_code: report.exit_code ?? null } : {}),
    ...(report.event === 'end' ? { signal: report.signal ?? null } : {}),
    ...(report.ended_by ? { ended_by: report.ended_by } : {}),
    ...(queued !== undefined ? { queued_at: new Date(queued).toISOString() } : {}),
    late: queued !== undefined || now - happened > LATE_MS,
    grant_state: row.state,
  };
  const type = report.event === 'start' ? 'command.started' : 'command.ended';
  try {
    await deps.db.transaction(async (tx) => {
      await tx
        .insertInto('command_uses')
        .values({ use_id: report.use_id, event: report.event, request_id: row.id, at: now })
        .execute();
      await appendAudit(tx, deps.db.dialect, now, [
        {
          type,
          request_id: row.id,
          actor: { iss: caller.iss, sub: caller.sub, name: caller.name },
          data,
        },
      ]);
    });
  } catch (err) {
    if (isUniqueViolation(err)) return { recorded: false };
    if (err instanceof AuditAppendError) deps.metrics.auditFailures.inc();
    throw err;
  }
  deps.metrics.auditAppends.inc({ type });
  return { recorded: true };
}
