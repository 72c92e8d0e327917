import type { StoreKind } from '../cli/config.js';

/**
 * Where secrets live: the OS keychain (default), encrypted files (only when chosen), or memory.
 * A narrow interface (workers-sdk's key providers) that every backend implements and one contract
 * test (test/credentials/contract.test.ts) runs against. Values are opaque strings (JSON records,
 * see records.ts); a backend never logs or prints them.
 */
export interface CredentialStore {
  readonly kind: StoreKind;
  /** For `jitctl status`: e.g. "OS keychain (Secret Service)". */
  readonly description: string;
  /** The value, or undefined when absent (or unreadable: corrupt entries count as absent). */
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  /** Idempotent: deleting an absent key succeeds. */
  delete(key: string): Promise<void>;
  /** Keys that start with `prefix` (all keys when omitted). */
  list(prefix?: string): Promise<string[]>;
  /**
   * Optional: does ahead what the next `set` would wait for (the file store checks its
   * passphrase), for a command that writes after a long wait. Never prompts; failures are left
   * for `set` to report.
   */
  prepareWrite?(): Promise<void>;
  /**
   * Optional: checks now that the store can be written, asking whatever it must ask (the file
   * store's passphrase) and failing with the store's own error (a locked or missing keychain).
   * `jitctl login` calls it before anyone signs in, so a store that cannot keep the session fails
   * at once instead of after the sign-in.
   */
  probe?(): Promise<void>;
}
