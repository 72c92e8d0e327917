import type { AuditEvent } from '../api/schemas.js';
import { safe } from './output.js';

/**
 * How an audit event reads on a terminal, for `audit list` (a table) and `audit tail` (a line per
 * event): everything in it came from other people or from the database, so all of it goes
 * through safe().
 */

/** The event's time to the second. */
export const auditTime = (e: AuditEvent) => safe(e.at.replace(/\.\d{3}Z$/, 'Z'));

/** Who caused it: a name, a subject, or the broker itself. */
export const auditActor = (e: AuditEvent) =>
  e.actor ? safe(e.actor.name ?? e.actor.sub) : '(broker)';

/** `key=value` pairs of an event's data, made safe for the terminal. */
export function auditDetails(e: AuditEvent): string {
  return Object.entries(e.data)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${safe(k)}=${safe(typeof v === 'string' ? v : JSON.stringify(v))}`)
    .join(' ');
}

/** One line of `audit tail`: seq, time, type, request, actor, details. */
export function auditLine(e: AuditEvent): string {
  return [
    String(e.seq),
    auditTime(e),
    safe(e.type),
    safe(e.request_id ?? '-'),
    auditActor(e),
    auditDetails(e),
  ]
    .join('  ')
    .trimEnd();
}
