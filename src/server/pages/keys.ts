import { randomBytes } from 'node:crypto';
import type { ServerClock } from '../clock.js';
import type { Db } from '../store/database.js';

/**
 * The review pages' keys, one row each in `ui_keys`: made by whichever broker needs one first and
 * read by every other replica, so a sign-in started at one replica finishes at another and a
 * form rendered by one is accepted by the next. 256 random bits each, one per purpose.
 */
export type KeyPurpose =
  /** Seals a sign-in in progress (state, PKCE verifier, nonce) into its cookie (A256GCM). */
  | 'sign-in'
  /** Binds CSRF tokens to the session they were made for (@fastify/csrf's hmacKey). */
  | 'csrf';

export async function pageKey(db: Db, purpose: KeyPurpose, clock: ServerClock): Promise<Buffer> {
  await db.kysely
    .insertInto('ui_keys')
    .values({ id: purpose, secret: randomBytes(32).toString('base64url'), created_at: clock.now() })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const row = await db.kysely
    .selectFrom('ui_keys')
    .select('secret')
    .where('id', '=', purpose)
    .executeTakeFirstOrThrow();
  return Buffer.from(row.secret, 'base64url');
}
