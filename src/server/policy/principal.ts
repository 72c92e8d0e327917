import { closest } from './suggest.js';
import type { Caller, Principal, RolePolicy } from './types.js';

/**
 * Policy entries naming people: `group:<name>` (matched against the caller's groups claim) and
 * `user:<sub or email>`. Identity is issuer + subject; the broker accepts one issuer, so a `sub`
 * here means a subject at that issuer. Email matching exists because people write policy in
 * emails, not opaque subjects, and it is only as good as the identity provider's verification,
 * hence the `emailVerified` gate.
 */

const KINDS = ['group', 'user'] as const;
const MAX_NAME = 256;
// C0/C1 controls, bidi controls and zero-width characters: invisible in a reviewer's terminal,
// so a name containing one could pass for another.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

export const PRINCIPAL_HINT = 'entries look like group:<name> or user:<sub or email>';

/** Parses one policy entry; returns the reason when it is not a valid principal. */
export function parsePrincipal(text: string): { principal: Principal } | { error: string } {
  const colon = text.indexOf(':');
  if (colon === -1) {
    const example = text.includes('@') ? `user:${text}` : `group:${text}`;
    return { error: `\`${text}\` needs a kind: write \`${example}\` (${PRINCIPAL_HINT})` };
  }
  const kind = text.slice(0, colon);
  const name = text.slice(colon + 1);
  if (kind !== 'group' && kind !== 'user') {
    const meant = closest(kind, KINDS);
    return {
      error: meant
        ? `unknown kind \`${kind}:\`; did you mean \`${meant}:${name}\`?`
        : `unknown kind \`${kind}:\` (${PRINCIPAL_HINT})`,
    };
  }
  if (name === '') return { error: `\`${text}\` names no ${kind} (${PRINCIPAL_HINT})` };
  if (name.length > MAX_NAME) return { error: `the ${kind} name is over ${MAX_NAME} characters` };
  if (name.trim() !== name) {
    return { error: `\`${text}\` has spaces around the ${kind} name; remove them` };
  }
  if (INVISIBLE.test(name)) {
    return { error: `the ${kind} name contains control or invisible characters` };
  }
  if (name === '*') {
    return {
      error: 'wildcards are not supported: name a group that everyone concerned is a member of',
    };
  }
  return { principal: kind === 'group' ? { kind, name } : { kind, value: name } };
}

/** The policy-file spelling of a principal (`group:leads`), as shown in summaries and on the wire. */
export function formatPrincipal(p: Principal): string {
  return p.kind === 'group' ? `group:${p.name}` : `user:${p.value}`;
}

/**
 * A key under which two entries name the same principal: emails compare case-insensitively
 * (RFC 5321 leaves the local part's case to the receiving host, but no identity provider issues
 * two accounts differing only by case), subjects exactly.
 */
export function principalKey(p: Principal): string {
  if (p.kind === 'group') return `group:${p.name}`;
  return p.value.includes('@') ? `user:${p.value.toLowerCase()}` : `user:${p.value}`;
}

function matches(p: Principal, caller: Caller): boolean {
  if (p.kind === 'group') return caller.groups.includes(p.name);
  if (caller.sub === p.value) return true;
  // Only entries that look like emails match emails: otherwise an attacker-chosen email equal to
  // someone's opaque subject would match their entry.
  return (
    p.value.includes('@') &&
    caller.emailVerified &&
    caller.email !== null &&
    caller.email.toLowerCase() === p.value.toLowerCase()
  );
}

/** Whether any of `principals` names the caller (group membership, or user by sub or verified email). */
export function matchesAny(principals: readonly Principal[], caller: Caller): boolean {
  return principals.some((p) => matches(p, caller));
}

/** Whether the caller may file requests for this role. */
export function canRequest(role: RolePolicy, caller: Caller): boolean {
  return matchesAny(role.requesters, caller);
}

/**
 * Whether the caller is one of the role's approvers. Eligibility only: the broker separately
 * refuses a requester reviewing their own request (by iss + sub, whatever the policy says).
 */
export function canReview(role: RolePolicy, caller: Caller): boolean {
  return matchesAny(role.approvers, caller);
}
