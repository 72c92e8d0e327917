import { createHash, randomBytes } from 'node:crypto';
import type { Decision } from '../../api/schemas.js';
import type { ServerClock } from '../clock.js';
import type { Caller } from '../policy/types.js';
import type { Db } from '../store/database.js';

/**
 * Browser sessions of the review pages, kept in the database (`ui_sessions`) rather than in an
 * encrypted cookie: every replica reads the same table, signing out deletes the row so a copied
 * cookie dies with it, and nothing about a person rides in the browser. The cookie holds 256
 * random bits; the table holds their SHA-256, so reading the table never yields a usable cookie.
 * Sessions last a fixed time from sign-in (`ui_session_ttl`); expired rows are removed when the
 * next session is made.
 */

/**
 * What a waiting decision is on: the request's review, the review of the extension waiting on a
 * grant, the review afterwards of a break-glass grant, or the requester's own ask for more time.
 * Intents stored before the others existed have none: they are the request's.
 */
export type IntentTarget = 'request' | 'extension' | 'break-glass' | 'extend';

/** A decision that waits for a fresh sign-in (step-up), to be shown again and confirmed. */
export interface ReviewIntent {
  requestId: string;
  target?: IntentTarget;
  /** `approve`/`deny`; `acknowledge`/`flag` for a break-glass grant; `extend` for an ask. */
  decision: Decision | 'acknowledge' | 'flag' | 'extend';
  /** The comment (the reason, for an ask for more time). */
  comment: string;
  /** The fingerprint the person saw before signing in again (the extension's, for its review). */
  fingerprint: string;
  /** How much longer, for an ask for more time. */
  duration?: string;
  /** When it was made (ms); it is offered again for {@link INTENT_TTL_MS}. */
  at: number;
}

export const INTENT_TTL_MS = 15 * 60_000;

/** The session's waiting decision on `target` of request `id`, if it is still fresh. */
export function intentOn(
  s: PageSession,
  id: string,
  target: IntentTarget,
  now: number,
): ReviewIntent | null {
  const i = s.intent;
  return i && i.requestId === id && (i.target ?? 'request') === target && now - i.at < INTENT_TTL_MS
    ? i
    : null;
}

export interface PageSession {
  idHash: string;
  caller: Caller;
  intent: ReviewIntent | null;
  createdAt: number;
  expiresAt: number;
}

export type Lookup =
  | { kind: 'none' }
  | { kind: 'expired' }
  | { kind: 'valid'; session: PageSession };

const hashOf = (cookieValue: string) =>
  createHash('sha256').update(cookieValue).digest('base64url');

/** Cookie values this store hands out: 43 base64url characters. */
const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

export class SessionStore {
  constructor(
    private readonly db: Db,
    private readonly clock: ServerClock,
    readonly ttlMs: number,
  ) {}

  /** A new session for `caller`; returns the cookie's value (shown to no one else). */
  async create(
    caller: Caller,
    intent: ReviewIntent | null,
  ): Promise<{ cookieValue: string; session: PageSession }> {
    const now = this.clock.now();
    const cookieValue = randomBytes(32).toString('base64url');
    const session: PageSession = {
      idHash: hashOf(cookieValue),
      caller,
      intent,
      createdAt: now,
      expiresAt: now + this.ttlMs,
    };
    await this.db.kysely.deleteFrom('ui_sessions').where('expires_at', '<=', now).execute();
    await this.db.kysely
      .insertInto('ui_sessions')
      .values({
        id_hash: session.idHash,
        iss: caller.iss,
        sub: caller.sub,
        caller: JSON.stringify(caller),
        intent: intent ? JSON.stringify(intent) : null,
        created_at: now,
        expires_at: session.expiresAt,
      })
      .execute();
    return { cookieValue, session };
  }

  async find(cookieValue: string | undefined): Promise<Lookup> {
    if (!cookieValue || !COOKIE_VALUE.test(cookieValue)) return { kind: 'none' };
    const idHash = hashOf(cookieValue);
    const row = await this.db.kysely
      .selectFrom('ui_sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    if (!row) return { kind: 'none' };
    if (row.expires_at <= this.clock.now()) {
      await this.delete(idHash);
      return { kind: 'expired' };
    }
    return {
      kind: 'valid',
      session: {
        idHash,
        caller: JSON.parse(row.caller) as Caller,
        intent: row.intent ? (JSON.parse(row.intent) as ReviewIntent) : null,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
      },
    };
  }

  async setIntent(idHash: string, intent: ReviewIntent | null): Promise<void> {
    await this.db.kysely
      .updateTable('ui_sessions')
      .set({ intent: intent ? JSON.stringify(intent) : null })
      .where('id_hash', '=', idHash)
      .execute();
  }

  async delete(idHash: string): Promise<void> {
    await this.db.kysely.deleteFrom('ui_sessions').where('id_hash', '=', idHash).execute();
  }
}
