import type { CredentialStore } from './store.js';

/** Nothing persists: for `exec --no-store` and tests. Entries live as long as the process. */
export function memoryStore(): CredentialStore {
  const entries = new Map<string, string>();
  return {
    kind: 'memory',
    description: 'memory (nothing is written anywhere)',
    async get(key) {
      return entries.get(key);
    },
    async set(key, value) {
      entries.set(key, value);
    },
    async delete(key) {
      entries.delete(key);
    },
    async list(prefix = '') {
      return [...entries.keys()].filter((k) => k.startsWith(prefix));
    },
  };
}
