import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeopleDirectory, pickRecipients } from '../../../src/server/people/directory.js';
import type { Caller } from '../../../src/server/policy/types.js';
import { type Db, openDatabase } from '../../../src/server/store/database.js';
import { migratedDatabase } from '../../support/database.js';

/** The people directory on both dialects: throttled recording, lookups, recipients for principals. */

const ISS = 'https://idp.example.com';
const caller = (sub: string, over: Partial<Caller> = {}): Caller => ({
  iss: ISS,
  sub,
  name: sub.replace(/-sub$/, ''),
  email: `${sub.replace(/-sub$/, '')}@example.com`,
  emailVerified: true,
  groups: [],
  acr: 'mfa',
  authTime: null,
  ...over,
});

describe.each(['sqlite', 'postgres'] as const)('people directory (%s)', (dialect) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  // A clock that moves only when told to, so times compare exactly.
  let t = 1_800_000_000_000;
  const clock = {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };

  beforeAll(async () => {
    ({ db, cleanup } = await migratedDatabase(dialect));
  });
  afterAll(async () => cleanup?.());

  it('records a sign-in, then writes again only when something changed or after refreshEveryMs', async () => {
    const people = new PeopleDirectory({ db, clock, refreshEveryMs: 10 * 60_000 });
    const lee = caller('lee-sub', { groups: ['leads', 'oncall'] });
    const first = clock.now();
    people.seen(lee);
    await people.flush();
    expect(await people.get(ISS, 'lee-sub')).toEqual({
      iss: ISS,
      sub: 'lee-sub',
      kind: 'person',
      name: 'lee',
      email: 'lee@example.com',
      emailVerified: true,
      groups: ['leads', 'oncall'],
      firstSeenAt: first,
      lastSeenAt: first,
    });
    // The same sign-in a minute later: no write.
    clock.advance(60_000);
    for (let i = 0; i < 50; i++) people.seen(lee);
    await people.flush();
    expect((await people.get(ISS, 'lee-sub'))!.lastSeenAt).toBe(first);
    // Left a group: written at once, and group lookups follow.
    people.seen({ ...lee, groups: ['leads'] });
    await people.flush();
    const changed = await people.get(ISS, 'lee-sub');
    expect(changed!.groups).toEqual(['leads']);
    expect(changed!.lastSeenAt).toBe(clock.now());
    expect((await people.find({ groups: ['oncall'], limit: 10 })).map((p) => p.sub)).toEqual([]);
    // Unchanged but past the refresh interval: written again.
    clock.advance(11 * 60_000);
    people.seen({ ...lee, groups: ['leads'] });
    await people.flush();
    expect((await people.get(ISS, 'lee-sub'))!.lastSeenAt).toBe(clock.now());
    expect((await people.get(ISS, 'lee-sub'))!.firstSeenAt).toBe(first);
  });

  it('keeps workloads apart and never lets a write failure reach the caller', async () => {
    const warnings: string[] = [];
    const people = new PeopleDirectory({
      db,
      clock,
      logger: { warn: (_o, m) => warnings.push(m) },
    });
    people.seen(
      caller('github:acme/app:production', {
        name: 'github-deploy',
        email: null,
        emailVerified: false,
        groups: ['ci-deployers'],
        workload: { issuer: 'https://token.actions.githubusercontent.com', entry: 'github-deploy' },
      }),
    );
    await people.flush();
    expect((await people.get(ISS, 'github:acme/app:production'))!.kind).toBe('workload');
    // A caller whose fields the database refuses (a name far too long is cut, not refused; a
    // closed database is the failure we can cause here).
    const closed = await openDatabase({ dialect: 'sqlite', location: ':memory:' });
    await closed.close();
    const broken = new PeopleDirectory({
      db: closed,
      clock,
      logger: { warn: (_o, m) => warnings.push(m) },
    });
    expect(() => broken.seen(caller('x-sub'))).not.toThrow();
    await broken.flush();
    expect(warnings).toEqual(['could not record a sign-in in the people directory']);
  });

  it('finds the verified emails of the approvers a policy names', async () => {
    const people = new PeopleDirectory({ db, clock });
    const write = (c: Caller) => people.record(c);
    await write(caller('lin-sub', { groups: ['leads'], emailVerified: false }));
    await write(caller('ana-sub', { groups: ['leads'] }));
    await write(caller('kai-sub', { groups: ['sre'] }));
    await write(caller('alice-sub', { groups: ['developers', 'leads'] }));
    // Seen long ago: a group membership that old does not route notifications.
    const now = clock.now();
    clock.advance(-40 * 24 * 3_600_000);
    await write(caller('old-sub', { groups: ['leads'] }));
    clock.advance(40 * 24 * 3_600_000);
    expect(clock.now()).toBe(now);

    const emails = await people.emailsFor(
      [
        { kind: 'group', name: 'leads' },
        { kind: 'user', value: 'kai-sub' },
        { kind: 'user', value: 'Carol@Example.com' },
        { kind: 'user', value: 'ANA@example.com' },
      ],
      { exclude: { iss: ISS, sub: 'alice-sub', email: 'alice@example.com' } },
    );
    // lee (earlier test, group leads), ana, kai by sub, carol as written; not lin (unverified),
    // not old (stale), not alice (the requester), and ana once.
    expect(emails.sort()).toEqual(
      ['ANA@example.com', 'Carol@Example.com', 'kai@example.com', 'lee@example.com'].sort(),
    );
    expect(await people.verifiedEmail(ISS, 'lin-sub')).toBeNull();
    expect(await people.verifiedEmail(ISS, 'ana-sub')).toBe('ana@example.com');
    expect(await people.verifiedEmail(ISS, 'nobody')).toBeNull();
  });

  it('lists people in keyset pages, and by email without case', async () => {
    const people = new PeopleDirectory({ db, clock });
    const all: string[] = [];
    let after: { iss: string; sub: string } | undefined;
    for (;;) {
      const page = await people.find({ limit: 2, ...(after ? { after } : {}) });
      all.push(...page.map((p) => p.sub));
      if (page.length < 2) break;
      after = page[page.length - 1]!;
    }
    expect(all).toEqual([...all].sort());
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBeGreaterThanOrEqual(6);
    expect(
      (await people.find({ emails: ['ANA@EXAMPLE.COM'], limit: 5 })).map((p) => p.sub),
    ).toEqual(['ana-sub']);
    expect(await people.find({ groups: [], subs: [], limit: 5 })).toEqual([]);
  });
});

describe('pickRecipients', () => {
  const p = (sub: string, email: string | null, emailVerified = true) => ({
    iss: ISS,
    sub,
    kind: 'person' as const,
    name: null,
    email,
    emailVerified,
    groups: [],
    firstSeenAt: 0,
    lastSeenAt: 0,
  });
  it('dedupes without case, drops unverified and excluded people, and caps the list', () => {
    expect(
      pickRecipients(
        ['a@x.example', 'R@x.example'],
        [p('a', 'A@X.example'), p('b', 'b@x.example', false), p('r', 'r2@x.example'), p('c', null)],
        { iss: ISS, sub: 'r', email: 'r@x.example' },
        10,
      ),
    ).toEqual(['a@x.example']);
    expect(
      pickRecipients(
        [],
        Array.from({ length: 5 }, (_, i) => p(`s${i}`, `s${i}@x.example`)),
        undefined,
        3,
      ),
    ).toHaveLength(3);
  });
});
