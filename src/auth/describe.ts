import { safe } from '../cli/output.js';
import type { StoredIdentity } from '../credentials/records.js';

/**
 * How a signed-in identity is shown to its person. Kept apart from the OIDC code so that
 * `jitctl status`, which must stay offline and fast, can use it without loading openid-client.
 */

/** "alice (alice@example.com)": who a session belongs to, safe to print. */
export function describeIdentity(identity: StoredIdentity): string {
  const name = safe(identity.name ?? identity.sub);
  return identity.email && identity.email !== identity.name
    ? `${name} (${safe(identity.email)})`
    : name;
}

/** "developers, oncall" or "none". */
export function describeGroups(groups: readonly string[]): string {
  return groups.length > 0 ? groups.map((g) => safe(g)).join(', ') : 'none';
}
