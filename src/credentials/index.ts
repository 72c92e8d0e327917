import type { StoreKind } from '../cli/config.js';
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
      const [{ openFileStore }, { resolveAgentTimeout }] = await Promise.all([
        import('./file-store.js'),
        import('../cli/config.js'),
      ]);
      // The unlock agent is opt-in: without a timeout, nothing of it is even loaded.
      const ttlMs = await resolveAgentTimeout(ctx);
      const cache =
        ttlMs === undefined ? undefined : (await import('./agent.js')).agentCache(ctx, ttlMs);
      return openFileStore(ctx, cache);
    }
    case 'keychain': {
      const { openKeychainStore } = await import('./keychain-store.js');
      return openKeychainStore(ctx);
    }
  }
}
