import type { Db } from '../store/database.js';
import type { KeyStore } from './key-store.js';

export interface KeyStoreConfig {
  /** `db`, or the path of a key file. */
  signingKey: string;
}

/**
 * The key store the `signing_key` setting names, loaded on demand (a broker needs only one of the
 * two).
 */
export async function openKeyStore(config: KeyStoreConfig, db: Db): Promise<KeyStore> {
  if (config.signingKey === 'db') {
    const { DbKeyStore } = await import('./key-store-db.js');
    return new DbKeyStore(db);
  }
  const { FileKeyStore } = await import('./key-store-file.js');
  return new FileKeyStore(config.signingKey, db);
}
