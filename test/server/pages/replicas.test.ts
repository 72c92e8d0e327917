import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresDatabase } from '../../support/broker.js';
import { CookieJar, openReviewPage } from '../../support/dev-browser.js';
import {
  browse,
  csrfOf,
  devUser,
  fileRequest,
  fingerprintOf,
  type PagesBroker,
  startPagesBroker,
  stateOf,
} from '../../support/pages.js';

/**
 * Two brokers on one PostgreSQL database, as behind a load balancer: a session made at one is a
 * session at the other (the table is shared), a form rendered by one is accepted by the other
 * (the CSRF key is shared), and signing out at one ends the session at both.
 */

let db: { url: string; drop(): Promise<void> };
let a: PagesBroker;
let b: PagesBroker;

beforeAll(async () => {
  db = await freshPostgresDatabase();
  a = await startPagesBroker({ db: db.url });
  b = await startPagesBroker({ db: db.url });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

describe('review pages on replicas (PostgreSQL)', () => {
  it('a session and a form from one replica work at the other; sign-out ends it at both', async () => {
    const id = await fileRequest(a, devUser('alice'), {
      role: 'staging-admin',
      reason: 'replicas',
    });
    const jar = new CookieJar();
    const atA = await openReviewPage(`${a.url}/ui/requests/${id}`, devUser('lee'), {
      jar,
      mfa: true,
    });
    expect(atA.text).toContain('Signed in as Lee Lead');

    const atB = await browse(jar, `${b.url}/ui/requests/${id}`);
    expect(atB.status).toBe(200);
    expect(atB.text).toContain('Signed in as Lee Lead');
    const decided = await browse(jar, `${b.url}/ui/requests/${id}/review`, {
      form: { _csrf: csrfOf(atA.html), fingerprint: fingerprintOf(atA.html), decision: 'approve' },
      headers: { origin: b.url },
    });
    expect(decided.status).toBe(303);
    expect(await stateOf(a, id)).toBe('approved');

    const home = await browse(jar, `${a.url}/ui/`);
    // A copy of the cookie kept elsewhere (another device, a stolen cookie).
    const copied = new CookieJar();
    const session = /jitctl-session=[\w-]+/.exec(jar.header(new URL(a.url)))![0];
    copied.store(new URL(a.url), session);
    expect((await browse(copied, `${b.url}/ui/`)).status).toBe(200);
    const out = await browse(jar, `${b.url}/ui/sign-out`, {
      form: { _csrf: csrfOf(home.html) },
      headers: { origin: b.url },
    });
    expect(out.status).toBe(200);
    expect(out.text).toContain('You are signed out of the review pages');
    // The cookie is gone from this browser, and a copy kept elsewhere is dead too.
    expect((await browse(jar, `${a.url}/ui/`)).status).toBe(303);
    expect((await browse(copied, `${a.url}/ui/`)).status).toBe(303);
    expect(await a.broker.db.kysely.selectFrom('ui_sessions').selectAll().execute()).toEqual([]);
  });
});
