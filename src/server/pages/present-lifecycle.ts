import type { AccessRequest, ApprovalProgress, Extension } from '../../api/schemas.js';
import { safe } from '../../api/text.js';

/**
 * Short texts about the lifecycle's parts of a request (multi-party approvals, an extension, a
 * break-glass grant) that the request page and the lists share. Like present.ts: people's text
 * through `safe()`, HTML escaping left to the template engine.
 */

/** One group of a multi-party approval: "0 of 1 from group:security". */
export interface GroupLine {
  from: string;
  approved: number;
  required: number;
  done: boolean;
  text: string;
}

export function groupLines(progress: ApprovalProgress[] | null | undefined): GroupLine[] | null {
  if (!progress) return null;
  return progress.map((g) => {
    const done = g.approved >= g.required;
    return {
      from: safe(g.from),
      approved: g.approved,
      required: g.required,
      done,
      text: `${g.approved} of ${g.required} from ${safe(g.from)}${done ? ' ✓' : ''}`,
    };
  });
}

/** "1 of 1 from group:leads ✓, 0 of 1 from group:security" */
export function progressText(progress: ApprovalProgress[]): string {
  return (groupLines(progress) ?? []).map((g) => g.text).join(', ');
}

/** An extension's approvals: per group, or "0 of 1 approvals". */
export function extensionProgress(ext: Extension): string {
  if (ext.approvals_by) return progressText(ext.approvals_by);
  const n = ext.reviews.filter((r) => r.decision === 'approve').length;
  return `${n} of ${ext.approvals_required} ${ext.approvals_required === 1 ? 'approval' : 'approvals'}`;
}

/** The pill a break-glass grant carries in lists, loud while its review is missing. */
export function breakGlassFlag(r: AccessRequest): { text: string; tone: string } | null {
  const bg = r.break_glass;
  if (!bg) return null;
  if (bg.verdict === 'flagged') return { text: 'break-glass: flagged', tone: 'alert' };
  if (bg.verdict === 'acknowledged') return { text: 'break-glass: acknowledged', tone: 'other' };
  return bg.overdue
    ? { text: 'break-glass: review overdue', tone: 'alert' }
    : { text: 'break-glass: to review', tone: 'alert' };
}
