import { loadUserConfig, type StoreKind } from '../cli/config.js';
import type { Context } from '../cli/context.js';
import { memoryStore } from './memory-store.js';
import type { CredentialStore } from './store.js';

export type { CredentialStore } from './store.js';

/**
 * Opens the credential store of the given kind. Backends load lazily: jose only for the file
 * store, the keychain's native module only when the keychain is used.
 */
export async function openStore(ctx: Context, kind: StoreKind): Promise<CredentialStore> {
  switch (kind) {
    case 'memory':
      return memoryStore();
    case 'file': {
      const { openFileStore, resolveAgentTimeout, agentCache } = await import('./file-store.js');
      // The unlock agent is opt-in: unless it is turned on, it is not even asked.
      const on =
        Boolean(ctx.env.JITCTL_AGENT_TIMEOUT) ||
        (await loadUserConfig(ctx)).agent_timeout !== undefined;
      const ttlMs = on ? await resolveAgentTimeout(ctx) : undefined;
      return openFileStore(ctx, ttlMs === undefined ? undefined : agentCache(ctx, ttlMs));
    }
    case 'keychain': {
      const { openKeychainStore } = await import('./keychain-store.js');
      return openKeychainStore(ctx);
    }
  }
}
