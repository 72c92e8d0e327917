import { sql } from 'kysely';
import type { Db } from '../store/database.js';
import type { KeyRecord } from './keys.js';

/**
 * When a key that stopped signing may leave the JWKS: once every credential and pipeline session
 * it signed has expired. The audit log knows: each `credential.minted` and `session.exchanged`
 * event records the `kid` that signed and the `exp`, and nothing is handed out without its event
 * (fail closed), so the latest `exp` recorded with a kid is the last moment anything it signed
 * can verify. Two allowances on top:
 *
 * - replicas re-read the key set every few seconds (key-watch.ts), and a credential signed just
 *   before the switch is audited a moment later, so nothing is decided until KEY_SETTLE_MS after
 *   the rotation;
 * - relying parties accept tokens a little past `exp` (Vault's JWT auth allows 150 s by default,
 *   jose and go-oidc a configurable leeway), so the key stays RELYING_PARTY_LEEWAY_MS longer.
 */

/** How long after a rotation replicas may still sign with the old key (they re-read every 5 s). */
export const KEY_SETTLE_MS = 60_000;
/** Clock leeway relying parties give `exp`. */
export const RELYING_PARTY_LEEWAY_MS = 5 * 60_000;

/** SQL LIKE with `\` as the escape character, for a literal fragment. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * The latest `exp` (ms) of anything signed with `kid`, from the audit log, or null if nothing
 * was. Sessions audited before their events carried a kid count for every key (they last at most
 * 12 h, so this only delays retiring keys from those days). One aggregate query: `exp` is an
 * RFC 3339 UTC string in canonical JSON (first `"exp":"` in the object, fixed width), so the
 * maximum string is the latest time, on SQLite and PostgreSQL alike.
 */
export async function latestExpiry(db: Db, kid: string): Promise<number | null> {
  const at = db.dialect === 'postgres' ? sql`strpos(data, '"exp":"')` : sql`instr(data, '"exp":"')`;
  const mine = `%"kid":"${likeLiteral(kid)}"%`;
  const { rows } = await sql<{ exp: string | null }>`
    select max(substr(data, ${at} + 7, 24)) as exp from audit_events
    where data like '%"exp":"%'
      and (data like ${mine} escape '\\'
        or (type = 'session.exchanged' and data not like '%"kid":%'))`.execute(db.kysely);
  const exp = rows[0]?.exp;
  if (!exp) return null;
  const ms = Date.parse(exp);
  return Number.isFinite(ms) ? ms : null;
}

/** When `key` can be retired safely, given the latest expiry of what it signed. */
export function retirableAt(key: KeyRecord, latestExp: number | null): number | null {
  if (key.state !== 'published') return null;
  const stopped = key.rotatedAt ?? key.createdAt;
  return Math.max(latestExp ?? 0, stopped + KEY_SETTLE_MS) + RELYING_PARTY_LEEWAY_MS;
}

/** Whether the answer can still move: replicas may still be signing with the key. */
export const settled = (key: KeyRecord, now: number): boolean =>
  key.state === 'published' && (key.rotatedAt ?? key.createdAt) + KEY_SETTLE_MS <= now;
