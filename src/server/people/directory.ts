import type { ServerClock } from '../clock.js';
import type { Caller, Principal } from '../policy/types.js';
import type { Db } from '../store/database.js';
import { findPeople, getPerson, type PeopleQuery, upsertPerson } from '../store/people.js';
import type { PersonRow } from '../store/schema.js';

/**
 * The people directory: everyone who has signed in to the broker, as their last sign-in showed
 * them (name, email and whether the identity provider verified it, groups). The broker has no
 * user list of its own (the identity provider is the source of truth), so this is what it knows
 * about people it has to reach: approvers to email about a new request, a requester to tell of
 * a decision, people to list in access reviews and reports.
 *
 * Recording is throttled: a sign-in is written when someone is first seen, when anything about
 * them changed, and otherwise at most once per `refreshEveryMs` per replica, never per API call.
 * Writes happen in the background and never fail or slow the request that triggered them.
 */

export interface Person {
  iss: string;
  sub: string;
  kind: 'person' | 'workload';
  name: string | null;
  email: string | null;
  /** False when the identity provider said `email_verified: false` (as for `user:<email>` entries). */
  emailVerified: boolean;
  groups: string[];
  firstSeenAt: number;
  lastSeenAt: number;
}

export interface DirectoryOptions {
  db: Db;
  clock: ServerClock;
  logger?: { warn(obj: object, msg: string): void };
  /** How stale `last_seen_at` may get for someone who keeps signing in unchanged (default 10 min). */
  refreshEveryMs?: number;
  /** People remembered for throttling (default 10,000; the oldest are forgotten first). */
  maxTracked?: number;
}

export interface RecipientOptions {
  /** Never this person (the requester is never asked to review their own request). */
  exclude?: { iss: string; sub: string; email?: string | null };
  /** Only people seen since (default: the last 30 days), so group lists age out. */
  seenSince?: number;
  /** At most this many addresses (default 200). */
  limit?: number;
}

/** Group memberships seen more than this long ago are not trusted to route notifications. */
export const RECIPIENT_FRESHNESS_MS = 30 * 24 * 3_600_000;
const MAX_GROUPS = 256;
const MAX_FIELD = 512;

export class PeopleDirectory {
  readonly #opts: DirectoryOptions;
  readonly #recent = new Map<string, { at: number; fingerprint: string }>();
  readonly #writes = new Set<Promise<void>>();
  #lastWarning = 0;

  constructor(opts: DirectoryOptions) {
    this.#opts = opts;
  }

  /** Called for each authenticated caller; returns at once and never throws. */
  seen(caller: Caller): void {
    try {
      const now = this.#opts.clock.now();
      const key = `${caller.iss}\n${caller.sub}`;
      const fingerprint = JSON.stringify([
        caller.name,
        caller.email,
        caller.emailVerified,
        [...caller.groups].sort(),
        caller.workload ? 1 : 0,
      ]);
      const last = this.#recent.get(key);
      const every = this.#opts.refreshEveryMs ?? 10 * 60_000;
      if (last && last.fingerprint === fingerprint && now - last.at < every) return;
      this.#recent.delete(key);
      this.#recent.set(key, { at: now, fingerprint });
      const max = this.#opts.maxTracked ?? 10_000;
      while (this.#recent.size > max) this.#recent.delete(this.#recent.keys().next().value!);
      const write: Promise<void> = this.record(caller)
        .catch((err: unknown) => {
          this.#recent.delete(key);
          this.#warn(err);
        })
        .finally(() => this.#writes.delete(write));
      this.#writes.add(write);
    } catch (err) {
      this.#warn(err);
    }
  }

  /** At most one warning a minute: a database outage must not flood the log from every call. */
  #warn(err: unknown): void {
    const now = this.#opts.clock.now();
    if (now - this.#lastWarning < 60_000) return;
    this.#lastWarning = now;
    try {
      this.#opts.logger?.warn({ err }, 'could not record a sign-in in the people directory');
    } catch {}
  }

  /** Writes one sign-in now (seen() is the throttled way). */
  async record(caller: Caller): Promise<void> {
    const cut = (s: string | null) => (s === null ? null : s.slice(0, MAX_FIELD));
    const groups = [...new Set(caller.groups.filter((g) => g.length <= MAX_FIELD))].slice(
      0,
      MAX_GROUPS,
    );
    const at = this.#opts.clock.now();
    await this.#opts.db.transaction((tx) =>
      upsertPerson(tx, {
        iss: caller.iss,
        sub: caller.sub,
        kind: caller.workload ? 'workload' : 'person',
        name: cut(caller.name),
        email: cut(caller.email),
        emailVerified: caller.emailVerified,
        groups,
        at,
      }),
    );
  }

  /** Waits for the writes seen() started (shutdown, tests). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#writes]);
  }

  async get(iss: string, sub: string): Promise<Person | undefined> {
    const row = await getPerson(this.#opts.db.kysely, iss, sub);
    return row ? toPerson(row) : undefined;
  }

  /** People by group, subject or email (any of them), or everyone; keyset pages by (iss, sub). */
  async find(query: PeopleQuery): Promise<Person[]> {
    return (await findPeople(this.#opts.db.kysely, query)).map(toPerson);
  }

  /** The verified email of one person, or null. */
  async verifiedEmail(iss: string, sub: string): Promise<string | null> {
    const p = await this.get(iss, sub);
    return p?.emailVerified && p.email ? p.email : null;
  }

  /**
   * Email addresses for a list of policy principals: `user:<email>` entries as written (the
   * policy's author vouches for them), and the verified emails of people whose subject a
   * `user:<sub>` entry names or whose last sign-in showed a `group:` entry's group.
   */
  async emailsFor(
    principals: readonly Principal[],
    opts: RecipientOptions = {},
  ): Promise<string[]> {
    const limit = opts.limit ?? 200;
    const groups = principals.flatMap((p) => (p.kind === 'group' ? [p.name] : []));
    const subs = principals.flatMap((p) =>
      p.kind === 'user' && !p.value.includes('@') ? [p.value] : [],
    );
    const written = principals.flatMap((p) =>
      p.kind === 'user' && p.value.includes('@') ? [p.value] : [],
    );
    const found =
      groups.length + subs.length > 0
        ? await findPeople(this.#opts.db.kysely, {
            groups,
            subs,
            seenSince: opts.seenSince ?? this.#opts.clock.now() - RECIPIENT_FRESHNESS_MS,
            limit: limit * 2,
          })
        : [];
    return pickRecipients(written, found.map(toPerson), opts.exclude, limit);
  }
}

/**
 * The addresses to write to, deduplicated without case, with only verified emails from the
 * directory, and never the excluded person (by subject or by address).
 */
export function pickRecipients(
  written: readonly string[],
  people: readonly Person[],
  exclude: RecipientOptions['exclude'],
  limit: number,
): string[] {
  const out = new Map<string, string>();
  const excludedEmail = exclude?.email?.toLowerCase();
  for (const address of written) {
    if (address.toLowerCase() !== excludedEmail) out.set(address.toLowerCase(), address);
  }
  for (const p of people) {
    if (!p.email || !p.emailVerified) continue;
    if (exclude && p.iss === exclude.iss && p.sub === exclude.sub) continue;
    if (p.email.toLowerCase() === excludedEmail) continue;
    if (!out.has(p.email.toLowerCase())) out.set(p.email.toLowerCase(), p.email);
  }
  return [...out.values()].slice(0, limit);
}

function toPerson(row: PersonRow): Person {
  let groups: string[] = [];
  try {
    const parsed = JSON.parse(row.groups) as unknown;
    if (Array.isArray(parsed)) groups = parsed.filter((g): g is string => typeof g === 'string');
  } catch {}
  return {
    iss: row.iss,
    sub: row.sub,
    kind: row.kind,
    name: row.name,
    email: row.email,
    emailVerified: row.email_verified === 1,
    groups,
    firstSeenAt: row.first_seen_at,
    lastSeenAt: row.last_seen_at,
  };
}

export type { PeopleQuery } from '../store/people.js';
