import { formatDuration, tryParseDuration } from '../../api/duration.js';
import { type AccessRequest, ExtendBody, LIMITS, type Review } from '../../api/schemas.js';
import { safe } from '../../api/text.js';
import type { Caller, RolePolicy } from '../policy/types.js';
import type { Db } from '../store/database.js';
import { type ExtensionEvent, extensionEvents } from './history.js';
import { type ReviewLine, type TimeText, timeText, who, whoShort } from './present.js';
import { extensionProgress, type GroupLine, groupLines } from './present-lifecycle.js';
import { type IntentTarget, intentOn, type PageSession, type ReviewIntent } from './sessions.js';

/**
 * The lifecycle's part of the request page: a scheduled start, a rule's decision, multi-party
 * progress, an extension under review with its own Approve/Deny, the extensions so far, a
 * break-glass grant's banner with Acknowledge/Flag, and the requester's ask for more time. What
 * is allowed is only offered here; the RequestService decides (the same calls as the API), and
 * what it refuses comes back as the page's message.
 */

/** The API's limits on an ask for more time (its schema), which the page's form keeps too. */
export const EXTEND_LIMITS = {
  duration: ExtendBody.properties.duration.maxLength ?? 32,
  reason: ExtendBody.properties.reason.maxLength ?? 1000,
} as const;

/** What a form held when the service refused it, to show it again as typed. */
export interface Typed {
  target?: IntentTarget;
  comment?: string;
  duration?: string;
}

interface Button {
  value: string;
  label: string;
  className: string;
}

interface Fact {
  label: string;
  value: string;
}

export interface ExtensionSection {
  summary: string;
  duration: string;
  reason: string | null;
  requested: TimeText;
  progress: string;
  groups: GroupLine[] | null;
  reviews: ReviewLine[];
  fingerprint: string;
  /** The Approve/Deny form, for an approver who has not reviewed this extension yet. */
  form: { fingerprint: string; comment: string; buttons: Button[] } | null;
  confirm: boolean;
  note: string | null;
  /** The requester may withdraw it (POST …/cancel). */
  canWithdraw: boolean;
}

export interface BreakGlassSection {
  tone: 'alert' | 'other';
  title: string;
  lines: string[];
  comment: string | null;
  form: { comment: string; buttons: Button[] } | null;
  confirm: boolean;
  note: string | null;
}

export interface ExtendSection {
  intro: string;
  duration: string;
  reason: string;
  reasonRequired: boolean;
  button: string;
  confirm: boolean;
}

export interface LifecyclePage {
  /** "New request", "Extension of grant req_…: 30m more asked…", "Scheduled for …", "Break-glass…" */
  kind: string;
  facts: Fact[];
  groups: GroupLine[] | null;
  /** While pending: "1 more from group:security" (who the request still waits for). */
  stillNeeded: string | null;
  /** Instead of "0 of 1 needed" when no person approved it: break-glass, or a rule's decision. */
  approvalsInstead: string | null;
  /** Multi-party roles: "1 from group:leads and 1 from group:security" (all of them, not any). */
  whoMayApprove: string | null;
  commentRequired: boolean;
  commentNote: string;
  maxComment: number;
  limits: typeof EXTEND_LIMITS;
  extension: ExtensionSection | null;
  history: { text: string; reason: string | null }[];
  breakGlass: BreakGlassSection | null;
  extend: ExtendSection | null;
  /** A word on extending when the form is not offered (all used up). */
  extendNote: string | null;
}

const sameIdentity = (r: Review, c: Pick<Caller, 'iss' | 'sub'>) =>
  r.reviewer.iss === c.iss && r.reviewer.sub === c.sub;

/** Buttons of a two-way decision; after a step-up, the one chosen first reads "Confirm: …". */
function buttons(
  choices: [Button, Button],
  intent: ReviewIntent | null,
  other: (b: Button) => string,
): Button[] {
  if (!intent) return choices;
  const chosen = choices.find((b) => b.value === intent.decision) ?? choices[0];
  const rest = choices.filter((b) => b !== chosen);
  return [
    { ...chosen, label: `Confirm: ${chosen.value}` },
    ...rest.map((b) => ({ ...b, label: other(b) })),
  ];
}

export async function lifecyclePage(a: {
  request: AccessRequest;
  role: RolePolicy | undefined;
  session: PageSession;
  now: number;
  mine: boolean;
  mayReview: boolean;
  db: Db;
  typed: Typed | undefined;
}): Promise<LifecyclePage> {
  const { request: r, role, now } = a;
  const typedFor = (t: IntentTarget) =>
    (a.typed?.target ?? 'request') === t ? a.typed : undefined;
  const approvers =
    r.approvers.length > 0 ? r.approvers.map((x) => safe(x)).join(' or ') : 'nobody';
  const facts: Fact[] = [];
  if (r.starts_at) {
    const start = timeText(Date.parse(r.starts_at), now);
    const started = Date.parse(r.starts_at) <= now;
    facts.push({
      label: started ? 'Started' : 'Starts',
      value: `${start.text} (${start.relative})${r.state === 'pending' ? '; approvable now, usable from then' : ''}`,
    });
  }
  if (r.decided_by_rule) {
    facts.push({
      label: 'Decided by',
      value: `rule ${safe(r.decided_by_rule)} of the policy, automatically when it was filed`,
    });
  }
  if (r.extended) facts.push({ label: 'Extended', value: `by ${safe(r.extended)} in all` });
  const commentRequired = role?.requireReviewComment === true;
  const events = r.extension || r.extended ? await extensionEvents(a.db, r.id) : [];
  return {
    kind: kindOf(r, now),
    facts,
    groups: groupLines(r.approvals_by),
    stillNeeded: r.state === 'pending' ? stillNeeded(r, approvers) : null,
    whoMayApprove: r.approvals_by
      ? r.approvals_by.map((g) => `${g.required} from ${safe(g.from)}`).join(' and ')
      : null,
    approvalsInstead: r.break_glass
      ? 'none needed: break-glass access is reviewed afterwards'
      : r.decided_by_rule && r.reviews.length === 0
        ? `none: rule ${safe(r.decided_by_rule)} decided`
        : null,
    commentRequired,
    commentNote: commentRequired
      ? `required: role ${safe(r.role)} asks approvers to say why; the requester and the audit log see it`
      : 'optional; the requester and the audit log see it',
    maxComment: LIMITS.comment,
    limits: EXTEND_LIMITS,
    extension: extensionSection(a, approvers, typedFor('extension')),
    history: extensionHistory(
      events,
      r.extension?.state === 'pending' ? r.extension.round : 0,
      now,
    ),
    breakGlass: breakGlassSection(a, approvers, commentRequired, typedFor('break-glass')),
    ...extendSection(a, typedFor('extend')),
  };
}

/**
 * What kind of request this is, in one line: a new request, a scheduled one (its window), a
 * break-glass use, or a grant with an extension waiting for review.
 */
function kindOf(r: AccessRequest, now: number): string {
  if (r.break_glass) return 'Break-glass: taken at once without approval, reviewed afterwards';
  if (r.extension?.state === 'pending' && r.state === 'approved') {
    return `Extension of grant ${safe(r.id)}: ${safe(r.extension.duration)} more asked, waiting for review`;
  }
  if (r.starts_at) {
    const start = Date.parse(r.starts_at);
    // Until approved, the window is the start plus the duration; once approved, the broker's end.
    const end =
      r.state === 'pending'
        ? start + (tryParseDuration(r.duration) ?? 0)
        : Date.parse(r.expires_at);
    return `Scheduled for ${timeText(start, now).text} to ${timeText(end, now).text}`;
  }
  return r.decided_by_rule ? 'New request, decided by a rule' : 'New request';
}

/** "1 more from group:security", or "1 more from group:leads or group:sre". */
function stillNeeded(r: AccessRequest, approvers: string): string | null {
  if (r.approvals_by) {
    const owed = r.approvals_by
      .filter((g) => g.approved < g.required)
      .map((g) => `${g.required - g.approved} more from ${safe(g.from)}`);
    return owed.length > 0 ? `Still needed: ${owed.join(' and ')}.` : null;
  }
  const left = r.approvals_required - r.reviews.filter((x) => x.decision === 'approve').length;
  return left > 0 ? `Still needed: ${left} more from ${approvers}.` : null;
}

function extensionSection(
  a: Parameters<typeof lifecyclePage>[0],
  approvers: string,
  typed: Typed | undefined,
): ExtensionSection | null {
  const { request: r, now } = a;
  const ext = r.extension;
  if (ext?.state !== 'pending' || r.state !== 'approved') return null;
  const me = a.session.caller;
  const end = Date.parse(r.expires_at);
  const more = tryParseDuration(ext.duration) ?? 0;
  const until = timeText(end + more, now);
  const current = timeText(end, now);
  const intent = intentOn(a.session, r.id, 'extension', now);
  const reviewed = ext.reviews.find((x) => sameIdentity(x, me));
  let note: string | null = null;
  let form: ExtensionSection['form'] = null;
  if (a.mine) {
    note = `You asked for this extension, so you cannot review it. Ask ${approvers} to review it: send them this page's address.`;
  } else if (!a.mayReview) {
    note = `You may not review extensions of role ${safe(r.role)}; its approvers are ${approvers}.`;
  } else if (reviewed) {
    note = `You ${reviewed.decision === 'approve' ? 'approved' : 'denied'} this extension at ${timeText(Date.parse(reviewed.at), now).text}; it stands at ${extensionProgress(ext)}.`;
  } else {
    form = {
      fingerprint: intent?.fingerprint ?? ext.fingerprint,
      comment: typed?.comment ?? intent?.comment ?? '',
      buttons: buttons(
        [
          { value: 'approve', label: 'Approve extension', className: 'approve' },
          { value: 'deny', label: 'Deny extension', className: 'deny' },
        ],
        intent,
        (b) => `${b.value === 'approve' ? 'Approve' : 'Deny'} instead`,
      ),
    };
  }
  return {
    summary: `${who(r.requester)} asks for ${safe(ext.duration)} more: the grant would end at ${until.text} instead of ${current.text} (${current.relative}). It works until its current end meanwhile.`,
    duration: safe(ext.duration),
    reason: ext.reason ? safe(ext.reason) : null,
    requested: timeText(Date.parse(ext.requested_at), now),
    progress: `${extensionProgress(ext)}${ext.approvals_by ? '' : ' needed'}`,
    groups: groupLines(ext.approvals_by),
    reviews: ext.reviews.map((x) => ({
      who: who(x.reviewer),
      decision: x.decision === 'approve' ? 'approved' : 'denied',
      at: timeText(Date.parse(x.at), now),
      comment: x.comment ? safe(x.comment) : null,
    })),
    fingerprint: safe(ext.fingerprint),
    form,
    confirm: form !== null && intent !== null,
    note,
    canWithdraw: a.mine,
  };
}

/** "Extended by 30m by Lee Lead at 14:02 UTC", one line per decided extension, oldest first. */
function extensionHistory(
  events: ExtensionEvent[],
  pendingRound: number,
  now: number,
): { text: string; reason: string | null }[] {
  const asked = new Map<number, { duration: string; reason: string | null }>();
  const lines: { text: string; reason: string | null }[] = [];
  const str = (v: unknown) => (typeof v === 'string' ? safe(v) : null);
  for (const e of events) {
    const round = typeof e.data.round === 'number' ? e.data.round : 0;
    if (e.type === 'extension.requested') {
      asked.set(round, { duration: str(e.data.duration) ?? '?', reason: str(e.data.reason) });
      continue;
    }
    if (round === pendingRound) continue;
    const ask = asked.get(round);
    const duration = str(e.data.duration) ?? ask?.duration ?? '?';
    const at = timeText(Date.parse(e.at), now).text;
    const by = e.actor ? ` by ${whoShort(e.actor)}` : '';
    let text: string;
    switch (e.type) {
      case 'extension.approved': {
        const until = str(e.data.expires_at);
        const end = until ? `; until ${timeText(Date.parse(until), now).text}` : '';
        text = `Extended by ${duration}${by || ' automatically'} at ${at}${end}.`;
        break;
      }
      case 'extension.denied':
        text = `An extension by ${duration} was denied${by} at ${at}.`;
        break;
      case 'extension.cancelled':
        text = `An extension by ${duration} was withdrawn${by} at ${at}.`;
        break;
      case 'extension.expired':
        text = `An extension by ${duration} lapsed at ${at}${e.data.why ? ` (${str(e.data.why)})` : ''}.`;
        break;
      default:
        text = `${safe(e.type)} at ${at}.`;
    }
    lines.push({ text, reason: ask?.reason ?? null });
  }
  return lines;
}

function breakGlassSection(
  a: Parameters<typeof lifecyclePage>[0],
  approvers: string,
  commentRequired: boolean,
  typed: Typed | undefined,
): BreakGlassSection | null {
  const { request: r, now } = a;
  const bg = r.break_glass;
  if (!bg) return null;
  const used = timeText(Date.parse(r.created_at), now);
  const lines = [
    `${who(r.requester)} took ${safe(r.role)} at once, without approval, at ${used.text} (${used.relative}).`,
  ];
  if (bg.verdict) {
    const at = bg.reviewed_at ? ` at ${timeText(Date.parse(bg.reviewed_at), now).text}` : '';
    const by = bg.reviewer ? ` by ${who(bg.reviewer)}` : '';
    lines.push(`${bg.verdict === 'flagged' ? 'Flagged' : 'Acknowledged'}${by}${at}.`);
    if (bg.verdict === 'flagged' && r.state === 'approved')
      lines.push('Flagging does not end the grant: revoke it to end it now.');
    return {
      tone: bg.verdict === 'flagged' ? 'alert' : 'other',
      title: `Break-glass access, ${bg.verdict}`,
      lines,
      comment: bg.comment ? safe(bg.comment) : null,
      form: null,
      confirm: false,
      note: null,
    };
  }
  const due = timeText(Date.parse(bg.review_by), now);
  lines.push(
    bg.overdue
      ? `Its review is overdue: an approver of the role should have acknowledged or flagged it by ${due.text} (${due.relative}).`
      : `An approver of the role must acknowledge or flag it by ${due.text} (${due.relative}).`,
  );
  const intent = intentOn(a.session, r.id, 'break-glass', now);
  let form: BreakGlassSection['form'] = null;
  let note: string | null = null;
  if (a.mine) {
    note = `You used this access, so you cannot review it: ${approvers} will.`;
  } else if (!a.mayReview) {
    note = `Approvers of role ${safe(r.role)} review it: ${approvers}.`;
  } else {
    form = {
      comment: typed?.comment ?? intent?.comment ?? '',
      buttons: buttons(
        [
          { value: 'acknowledge', label: 'Acknowledge', className: 'approve' },
          { value: 'flag', label: 'Flag', className: 'deny' },
        ],
        intent,
        (b) => `${b.value === 'flag' ? 'Flag' : 'Acknowledge'} instead`,
      ),
    };
    note = commentRequired
      ? `Role ${safe(r.role)} asks for a comment with each review. Flagging tells the security contacts; it does not end the grant.`
      : 'Flagging needs a comment saying what was wrong, and tells the security contacts; it does not end the grant.';
  }
  return {
    tone: 'alert',
    title: bg.overdue ? 'Break-glass access: review overdue' : 'Break-glass access: to be reviewed',
    lines,
    comment: null,
    form,
    confirm: form !== null && intent !== null,
    note,
  };
}

function extendSection(
  a: Parameters<typeof lifecyclePage>[0],
  typed: Typed | undefined,
): { extend: ExtendSection | null; extendNote: string | null } {
  const { request: r, role, now } = a;
  const policy = role?.extend;
  const none = { extend: null, extendNote: null };
  if (!a.mine || !policy || r.state !== 'approved' || r.break_glass) return none;
  if (r.extension?.state === 'pending' || Date.parse(r.expires_at) <= now) return none;
  const used = r.extended ? (tryParseDuration(r.extended) ?? 0) : 0;
  const left = policy.maxTotalMs - used;
  if (left <= 0) {
    return {
      extend: null,
      extendNote: `This grant has had all ${formatDuration(policy.maxTotalMs)} of extensions role ${safe(r.role)} allows; file a new request when it ends.`,
    };
  }
  const intent = intentOn(a.session, r.id, 'extend', now);
  const duration = typed?.duration ?? intent?.duration ?? '';
  return {
    extend: {
      intro: `Role ${safe(r.role)} allows up to ${formatDuration(policy.maxTotalMs)} of extensions in all (${formatDuration(left)} left). ${
        policy.approvals === 0
          ? 'It is extended at once.'
          : 'An approver reviews it, as they did the request; the grant works until its current end meanwhile.'
      }`,
      duration: safe(duration),
      reason: typed?.comment ?? intent?.comment ?? '',
      reasonRequired: policy.requireReason,
      button: intent ? `Confirm: ask for ${safe(duration)} more` : 'Ask for more time',
      confirm: intent !== null,
    },
    extendNote: null,
  };
}
