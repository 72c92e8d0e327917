import type { NotifyTarget } from '../policy/types.js';
import type { EmailReason } from './email.js';
import type { EventFacts, NotificationEventSpec } from './events.js';

/**
 * Who hears of one event: a pure function of the event, its table entry, the policy's `notify`
 * entries, the security contacts and the addresses the directory found. The dispatcher does the
 * reading and writing around it.
 */

/** A policy entry with its webhook resolved to a key (the URL never leaves the settings). */
export type RoutedTarget =
  | (Extract<NotifyTarget, { kind: 'webhook' }> & { key: string })
  | Extract<NotifyTarget, { kind: 'email' }>;

export interface SecurityRoutes {
  emails: readonly string[];
  /** Webhook keys. */
  webhooks: readonly string[];
}

/** Addresses found for this event's request (verified emails only, requester excluded). */
export interface Recipients {
  approvers: readonly string[];
  requester: string | null;
}

export type Delivery =
  | { channel: 'webhook'; target: string; format: 'standard' | 'slack' }
  | { channel: 'email'; target: string; reason: EmailReason };

export function applies(t: Pick<NotifyTarget, 'roles' | 'events'>, type: string, role: string) {
  return (
    (t.roles === null || t.roles.includes(role)) && (t.events === null || t.events.includes(type))
  );
}

export function plan(
  facts: EventFacts,
  spec: NotificationEventSpec,
  targets: readonly RoutedTarget[],
  security: SecurityRoutes,
  securityFormat: (key: string) => 'standard' | 'slack',
  found: Recipients,
): Delivery[] {
  const audiences = new Set(spec.audiences(facts));
  const out: Delivery[] = [];
  const hooks = new Set<string>();
  const mails = new Set<string>();
  const mail = (address: string, reason: EmailReason) => {
    const key = address.toLowerCase();
    if (mails.has(key)) return;
    mails.add(key);
    out.push({ channel: 'email', target: address, reason });
  };
  for (const t of targets) {
    if (!applies(t, facts.type, facts.role)) continue;
    if (t.kind === 'webhook') {
      if (hooks.has(t.key)) continue;
      hooks.add(t.key);
      out.push({ channel: 'webhook', target: t.key, format: t.format });
      continue;
    }
    for (const r of t.to) {
      if (r.kind === 'address') mail(r.address, 'list');
      else if (r.kind === 'approvers' && audiences.has('approvers'))
        for (const a of found.approvers) mail(a, 'approvers');
      else if (r.kind === 'requester' && audiences.has('requester') && found.requester)
        mail(found.requester, 'requester');
    }
  }
  if (audiences.has('security_contacts')) {
    for (const a of security.emails) mail(a, 'security_contacts');
    for (const key of security.webhooks) {
      if (hooks.has(key)) continue;
      hooks.add(key);
      out.push({ channel: 'webhook', target: key, format: securityFormat(key) });
    }
  }
  return out;
}

/** Whether any route could want the approvers' or the requester's addresses (saves lookups). */
export function wants(
  targets: readonly RoutedTarget[],
  type: string,
  role: string,
  who: 'approvers' | 'requester',
): boolean {
  return targets.some(
    (t) => t.kind === 'email' && applies(t, type, role) && t.to.some((r) => r.kind === who),
  );
}
