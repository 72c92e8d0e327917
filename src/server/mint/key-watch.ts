import type { Logger } from 'pino';
import type { ServerClock } from '../clock.js';
import type { Db } from '../store/database.js';
import { latestExpiry, retirableAt, settled } from './key-retirement.js';
import type { KeyStore } from './key-store.js';
import {
  type KeyRecord,
  LiveKeyRing,
  type SigningAlg,
  type SigningKey,
  SigningKeyError,
  toSigningKey,
} from './keys.js';

/**
 * The running broker's view of its signing keys. At start it makes sure a key signs (creating
 * the first one); then it re-reads the key set every few seconds, so a `jitctl server keys
 * rotate` on any machine reaches every replica within one interval, without a restart and
 * without a message between them (polling a table of a few rows, or stat-ing a file, costs less
 * than a connection kept open for it). With `signing_key: db` it also retires published keys
 * once nothing they signed can still be valid, with a `key.retired` event (one replica wins:
 * the others find it retired).
 */

export interface KeyWatchOptions {
  store: KeyStore;
  /** The algorithm for a new key (`signing_alg`). */
  alg: SigningAlg;
  clock: ServerClock;
  logger: Logger;
  db: Db;
  /** How often to re-read the keys (default 5 s). */
  refreshMs?: number;
  /** Retire published keys once safe (database keys only; default true). */
  autoRetire?: boolean;
  /** Called after the ring changed (tests wait on it). */
  onChange?: (ring: LiveKeyRing) => void;
}

export interface KeyWatch {
  ring: LiveKeyRing;
  /** Re-reads the keys now (and retires what is due). */
  refresh(): Promise<void>;
  close(): void;
}

const fingerprint = (records: KeyRecord[]) => records.map((r) => `${r.kid}:${r.state}`).join(',');

export async function watchKeys(opts: KeyWatchOptions): Promise<KeyWatch> {
  const { store, clock, logger } = opts;
  await store.ensure(opts.alg, clock.now(), { create: true });
  const load = async (): Promise<SigningKey> => {
    const s = await store.signing();
    if (!s)
      throw new SigningKeyError(
        `${store.description} has no signing key`,
        'run `jitctl server keys rotate` to make one',
      );
    return toSigningKey(s.privateJwk, s.record.alg);
  };
  let current = await load();
  let records = await store.list();
  const ring = new LiveKeyRing(current, records);
  let seen = fingerprint(records);
  if (current.alg !== opts.alg)
    logger.warn(
      { kid: current.kid, alg: current.alg, signing_alg: opts.alg },
      `the signing key is ${current.alg} but signing_alg is ${opts.alg}: it keeps signing until \`jitctl server keys rotate\` makes a ${opts.alg} key`,
    );

  const autoRetire = opts.autoRetire !== false && store.description === 'the database';
  /** Per published kid, once it settled: when it becomes safe to retire. */
  const safeAt = new Map<string, number>();

  const retireDue = async () => {
    const now = clock.now();
    for (const r of records) {
      if (!settled(r, now)) continue;
      let at = safeAt.get(r.kid);
      if (at === undefined) {
        at = retirableAt(r, await latestExpiry(opts.db, r.kid))!;
        safeAt.set(r.kid, at);
      }
      if (now < at) continue;
      try {
        await store.retire(r.kid, now, { actor: null, safeAt: at });
        logger.info(
          { kid: r.kid, alg: r.alg },
          'signing key retired: nothing it signed is valid any more',
        );
      } catch (err) {
        // Another replica retired it first.
        if (!(err instanceof SigningKeyError)) throw err;
      }
      safeAt.delete(r.kid);
    }
  };

  const refresh = async () => {
    let next = await store.list();
    const signing = next.find((r) => r.state === 'signing');
    if (signing && signing.kid !== current.kid) {
      const previous = current.kid;
      current = await load();
      next = await store.list();
      logger.info({ kid: current.kid, alg: current.alg, previous }, 'signing with a new key');
    }
    records = next;
    if (fingerprint(next) !== seen) {
      seen = fingerprint(next);
      ring.update(current, next);
      opts.onChange?.(ring);
    }
    if (autoRetire) await retireDue();
  };

  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    refresh()
      .catch((err: unknown) => logger.warn({ err }, 'cannot re-read the signing keys; retrying'))
      .finally(() => {
        running = false;
      });
  }, opts.refreshMs ?? 5_000);
  timer.unref();
  return { ring, refresh, close: () => clearInterval(timer) };
}
