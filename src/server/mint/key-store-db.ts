import type { JWK } from 'jose';
import type { Kysely, Selectable } from 'kysely';
import { appendAudit } from '../audit/log.js';
import type { Db } from '../store/database.js';
import type { Database, SigningKeysTable } from '../store/schema.js';
import {
  created,
  type KeyChange,
  type KeyStore,
  type RotateResult,
  retiredEvent,
  rotated,
} from './key-store.js';
import {
  generateKey,
  type KeyRecord,
  type KeyState,
  type SigningAlg,
  SigningKeyError,
} from './keys.js';

/**
 * Signing keys in the `signing_keys` table (`signing_key: db`). The signing key's row has slot
 * `signing` (unique: there can never be two); when it stops signing its private JWK is erased,
 * so a published key can verify but never sign again, and no configuration change can bring it
 * back. Every change runs in one transaction with its audit events, holding the audit head's lock
 * (PostgreSQL; SQLite serializes writers) so two operators or replicas changing keys at once
 * queue instead of racing.
 */

type Row = Selectable<SigningKeysTable>;

const SIGNING_SLOT = 'signing';
/** Slots of the key per algorithm before migration 0200. */
const LEGACY_SLOT = /^current:/;

function toRecord(row: Row): KeyRecord {
  const legacySigning = row.slot !== null && LEGACY_SLOT.test(row.slot);
  return {
    kid: row.kid,
    alg: row.alg as SigningAlg,
    state: (row.slot === SIGNING_SLOT
      ? 'signing'
      : legacySigning
        ? 'published'
        : row.state) as KeyState,
    createdAt: row.created_at,
    rotatedAt: row.rotated_at,
    retiredAt: row.retired_at,
    publicJwk: JSON.parse(row.public_jwk) as JWK,
  };
}

export class DbKeyStore implements KeyStore {
  readonly description = 'the database';
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async #rows(q: Kysely<Database>): Promise<Row[]> {
    return (await q
      .selectFrom('signing_keys')
      .selectAll()
      .orderBy('created_at', 'desc')
      .execute()) as Row[];
  }

  /** Serializes key changes with every other writer of the audit chain. */
  async #lock(tx: Kysely<Database>): Promise<void> {
    if (this.#db.dialect === 'postgres')
      await tx.selectFrom('audit_head').select('seq').where('id', '=', 1).forUpdate().execute();
  }

  async #demote(tx: Kysely<Database>, kid: string, now: number): Promise<void> {
    await tx
      .updateTable('signing_keys')
      .set({ slot: null, state: 'published', rotated_at: now, private_jwk: '' })
      .where('kid', '=', kid)
      .execute();
  }

  async #insert(
    tx: Kysely<Database>,
    key: Awaited<ReturnType<typeof generateKey>>,
    alg: SigningAlg,
    now: number,
  ): Promise<void> {
    await tx
      .insertInto('signing_keys')
      .values({
        kid: key.kid,
        slot: SIGNING_SLOT,
        alg,
        private_jwk: JSON.stringify(key.privateJwk),
        public_jwk: JSON.stringify(key.publicJwk),
        created_at: now,
        state: 'signing',
        rotated_at: null,
        retired_at: null,
      })
      .execute();
  }

  async list(): Promise<KeyRecord[]> {
    return (await this.#rows(this.#db.kysely)).map(toRecord);
  }

  async signing(): Promise<{ record: KeyRecord; privateJwk: JWK } | undefined> {
    const row = (await this.#db.kysely
      .selectFrom('signing_keys')
      .selectAll()
      .where('slot', '=', SIGNING_SLOT)
      .executeTakeFirst()) as Row | undefined;
    if (!row) return undefined;
    if (!row.private_jwk)
      throw new SigningKeyError(`the signing key ${row.kid} has no private key in the database`);
    return { record: toRecord(row), privateJwk: JSON.parse(row.private_jwk) as JWK };
  }

  async ensure(alg: SigningAlg, now: number, opts: { create: boolean }): Promise<KeyRecord | null> {
    const before = await this.#rows(this.#db.kysely);
    if (before.some((r) => r.slot === SIGNING_SLOT)) return null;
    const legacy = before.filter((r) => r.slot !== null && LEGACY_SLOT.test(r.slot));
    const adoptable = legacy.some((r) => r.slot === `current:${alg}`);
    if (!opts.create && !adoptable) return null;
    const fresh = adoptable ? undefined : await generateKey(alg);
    return this.#db.transaction(async (tx) => {
      await this.#lock(tx);
      const rows = await this.#rows(tx);
      if (rows.some((r) => r.slot === SIGNING_SLOT)) return null;
      // Keys from before rotation existed: one slot per algorithm. The one for the configured
      // algorithm is the one that signed; the others only verify from now on.
      const old = rows.filter((r) => r.slot !== null && LEGACY_SLOT.test(r.slot));
      const adopt = old.find((r) => r.slot === `current:${alg}`);
      for (const r of old) if (r !== adopt) await this.#demote(tx, r.kid, now);
      if (adopt) {
        await tx
          .updateTable('signing_keys')
          .set({ slot: SIGNING_SLOT, state: 'signing' })
          .where('kid', '=', adopt.kid)
          .execute();
        return null;
      }
      if (!fresh) return null;
      await this.#insert(tx, fresh, alg, now);
      // The very first key is part of setting the broker up, not an event; a new key that
      // replaces older ones is a rotation.
      if (old.length > 0)
        await appendAudit(tx, this.#db.dialect, now, [
          created(fresh.kid, alg, null),
          rotated(fresh.kid, old[0]!.kid, alg, {
            actor: null,
            reason: `signing_alg is ${alg}; earlier keys were ${[...new Set(old.map((r) => r.alg))].join(', ')}`,
          }),
        ]);
      return toRecord((await this.#rows(tx)).find((r) => r.kid === fresh.kid)!);
    });
  }

  async rotate(alg: SigningAlg, now: number, by: KeyChange): Promise<RotateResult> {
    const fresh = await generateKey(alg);
    return this.#db.transaction(async (tx) => {
      await this.#lock(tx);
      const rows = await this.#rows(tx);
      const current =
        rows.find((r) => r.slot === SIGNING_SLOT) ??
        rows.find((r) => r.slot === `current:${alg}`) ??
        rows.find((r) => r.slot !== null && LEGACY_SLOT.test(r.slot));
      for (const r of rows) if (r.slot !== null) await this.#demote(tx, r.kid, now);
      await this.#insert(tx, fresh, alg, now);
      await appendAudit(tx, this.#db.dialect, now, [
        created(fresh.kid, alg, by.actor),
        rotated(fresh.kid, current?.kid ?? null, alg, by),
      ]);
      const after = await this.#rows(tx);
      return {
        created: toRecord(after.find((r) => r.kid === fresh.kid)!),
        previous: current ? toRecord(after.find((r) => r.kid === current.kid)!) : null,
      };
    });
  }

  async retire(
    kid: string,
    now: number,
    by: KeyChange & { safeAt: number | null },
  ): Promise<KeyRecord> {
    return this.#db.transaction(async (tx) => {
      await this.#lock(tx);
      const row = (await this.#rows(tx)).find((r) => r.kid === kid);
      if (!row) throw new SigningKeyError(`no key ${kid} in the database`);
      const record = toRecord(row);
      if (record.state === 'signing')
        throw new SigningKeyError(
          `key ${kid} is the signing key`,
          'rotate first (`jitctl server keys rotate`), then retire it once its credentials have expired',
        );
      if (record.state === 'retired')
        throw new SigningKeyError(
          `key ${kid} was already retired at ${new Date(row.retired_at ?? now).toISOString()}`,
        );
      await tx
        .updateTable('signing_keys')
        .set({ state: 'retired', retired_at: now, slot: null, private_jwk: '' })
        .where('kid', '=', kid)
        .execute();
      await appendAudit(tx, this.#db.dialect, now, [retiredEvent(record, by)]);
      return { ...record, state: 'retired', retiredAt: now };
    });
  }
}
