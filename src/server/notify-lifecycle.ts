/**
 * The webhook `text` of the lifecycle's events (extensions, scheduled starts, break-glass). The
 * parts come already escaped by eventText; undefined for an event this does not know.
 */
export function lifecycleText(
  type: string,
  p: {
    who: string;
    role: string;
    reviewer: string | null;
    id: string;
    note: string;
    reason: string;
  },
): string | undefined {
  switch (type) {
    case 'request.activated':
      return `${p.who}'s scheduled access to ${p.role} starts now${p.id}`;
    case 'extension.requested':
      return `${p.who} asks to extend their access to ${p.role}${p.id}`;
    case 'extension.approved':
      return `${p.reviewer ?? 'policy'} extended ${p.who}'s access to ${p.role}${p.note}${p.id}`;
    case 'extension.denied':
      return `${p.reviewer ?? 'a reviewer'} denied extending ${p.who}'s access to ${p.role}${p.note}${p.id}`;
    case 'extension.cancelled':
      return `${p.who} withdrew their extension of ${p.role}${p.id}`;
    case 'extension.expired':
      return `${p.who}'s extension of ${p.role} lapsed with the grant${p.id}`;
    case 'break_glass.used':
      return `BREAK-GLASS: ${p.who} took ${p.role} without approval${p.reason}; review it afterwards${p.id}`;
    case 'break_glass.acknowledged':
      return `${p.reviewer ?? 'an approver'} acknowledged ${p.who}'s break-glass use of ${p.role}${p.note}${p.id}`;
    case 'break_glass.flagged':
      return `FLAGGED: ${p.reviewer ?? 'an approver'} flagged ${p.who}'s break-glass use of ${p.role}${p.note}${p.id}`;
    case 'break_glass.overdue':
      return `OVERDUE: ${p.who}'s break-glass use of ${p.role} is still unreviewed${p.id}`;
    default:
      return undefined;
  }
}
