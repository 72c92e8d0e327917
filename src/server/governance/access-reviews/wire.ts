import type { AccessReview, AccessReviewItem, Who } from '../../../api/governance.js';
import { accessReviewPageUrl } from '../../../api/links.js';
import type { TrustedIssuer } from '../../federation/config.js';
import type { Caller, RolePolicy } from '../../policy/types.js';
import type { AccessReviewItemRow, AccessReviewRow } from '../../store/schema.js';
import { basisOf, isOwnAccess, policyEdits } from './rules.js';

/** Campaign and item rows as the API shows them to one caller. */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function whoOf(json: string | null): Who | null {
  if (json === null) return null;
  try {
    const w = JSON.parse(json) as Who;
    return { iss: w.iss, sub: w.sub, name: w.name ?? null };
  } catch {
    return null;
  }
}

export interface WireContext {
  caller: Caller;
  canDecide: boolean;
  roles: ReadonlyMap<string, RolePolicy>;
  issuers: readonly TrustedIssuer[];
  publicUrl: string;
  now: number;
}

export interface Progress {
  items: number;
  kept: number;
  removed: number;
}

export function itemToWire(row: AccessReviewItemRow, ctx: WireContext): AccessReviewItem {
  let removal: AccessReviewItem['removal'] = null;
  if (row.decision === 'remove') {
    const basis = basisOf(ctx.roles.get(row.role), row, ctx.issuers);
    removal = basis !== null && basis === row.basis ? 'active' : 'lapsed';
  }
  return {
    n: row.n,
    role: row.role,
    kind: row.kind,
    subject: row.subject,
    person:
      row.kind === 'person' && row.subject_iss !== null && row.subject_sub !== null
        ? { iss: row.subject_iss, sub: row.subject_sub, name: row.subject_name }
        : null,
    via: JSON.parse(row.via) as string[],
    known: row.known,
    last_used_at: iso(row.last_used_at),
    uses: row.uses,
    decision: row.decision,
    comment: row.comment,
    decided_by: whoOf(row.decided_by),
    decided_at: iso(row.decided_at),
    removal,
    yours: isOwnAccess(row, ctx.caller),
  };
}

export function campaignToWire(
  row: AccessReviewRow,
  progress: Progress,
  ctx: WireContext,
  items?: readonly AccessReviewItemRow[],
): AccessReview {
  return {
    id: row.id,
    title: row.title,
    state: row.state,
    roles: JSON.parse(row.roles) as string[],
    reviewers: JSON.parse(row.reviewers) as string[],
    created_by: whoOf(row.created_by) ?? { iss: '', sub: '', name: null },
    created_at: iso(row.created_at)!,
    due_at: iso(row.due_at)!,
    overdue: row.state === 'open' && ctx.now > row.due_at,
    closed_at: iso(row.closed_at),
    closed_by: whoOf(row.closed_by),
    progress: {
      items: progress.items,
      kept: progress.kept,
      removed: progress.removed,
      undecided: progress.items - progress.kept - progress.removed,
    },
    can_decide: ctx.canDecide && row.state === 'open',
    link: accessReviewPageUrl(ctx.publicUrl, row.id),
    ...(items
      ? {
          items: items.map((i) => itemToWire(i, ctx)),
          edits: policyEdits(items, ctx.roles),
        }
      : {}),
  };
}
