import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { GENESIS_HASH } from '../../src/api/audit-chain.js';
import { verifySqliteRange } from '../../src/server/audit/verify-range.js';
import { columnsOf, storedEvent } from '../support/audit-chain.js';

/**
 * verifySqliteRange reads each event's hashed text as SQLite builds it (json_quote) and falls
 * back to the whole row, checked by ChainVerifier.pushStored, when that text does not hash. The
 * verdict must not depend on which way a row went: texts where JSON.stringify and SQLite could
 * differ (controls, quotes, backslashes, U+2028, astral characters, NUL) chain as written, and
 * any change to them is found at that event. (No lone surrogates in the plain columns: SQLite
 * stores text as UTF-8 and one would come back as U+FFFD; the broker's texts from people are in
 * actor and data, as JSON with such characters escaped.)
 */

const AWKWARD = [
  'plain',
  'quote " and backslash \\ and slash /',
  'controls \u0001\u0008\t\n\f\r\u001f and DEL \u007f',
  'line separators \u2028 \u2029',
  'astral 🚀 and accents é',
  'NUL \u0000 inside',
];

let db: Database.Database | undefined;
afterEach(() => db?.close());

function seed(): Database.Database {
  const d = new Database(':memory:');
  d.exec(`create table audit_events (seq integer primary key, at text not null, type text not null,
    request_id text, actor text, data text not null, prev_hash text not null, hash text not null)`);
  const insert = d.prepare('insert into audit_events values (?, ?, ?, ?, ?, ?, ?, ?)');
  let prev = GENESIS_HASH;
  for (let i = 0; i < 2_500; i++) {
    const seq = i + 1;
    const text = AWKWARD[i % AWKWARD.length]!;
    const content = {
      seq,
      at: `2026-12-07T04:00:00.${String(i % 1000).padStart(3, '0')}Z`,
      type: i % 2 ? `request.${text}` : 'request.created',
      request_id: i % 3 ? `req_${text}` : null,
      actor: i % 5 ? { iss: 'https://idp', sub: text, name: null } : null,
      data: { reason: text, n: i, nested: { list: [text, 1.5, true, null] } },
    };
    const event = storedEvent(prev, content);
    insert.run(...columnsOf(event));
    prev = event.hash;
  }
  return d;
}

describe('verifySqliteRange', () => {
  it('accepts a chain of awkward texts, whole and in ranges', () => {
    db = seed();
    const whole = verifySqliteRange(db, Number.MIN_SAFE_INTEGER, 2_500);
    expect(whole.problem).toBeUndefined();
    expect(whole.first?.seq).toBe(1);
    expect(whole.end).toMatchObject({ seq: 2_500, count: 2_499 });
    const second = verifySqliteRange(db, 1_234, 2_500);
    expect(second.problem).toBeUndefined();
    expect(second.first?.seq).toBe(1_235);
    expect(second.end.hash).toBe(whole.end.hash);
  });

  it.each([
    ['type', "'request.' || 'changed'"],
    ['request_id', "request_id || ' '"],
    ['request_id', 'null'],
    ['actor', "replace(actor, 'https://idp', 'https://evil')"],
    ['actor', 'null'],
    ['data', `replace(data, '"n":', '"n":1')`],
    ['at', "'2026-12-07T04:00:00.999Z'"],
  ])('finds %s changed (%s) at that event', (column, expr) => {
    db = seed();
    for (const seq of [8, 1_203, 2_500]) {
      const d = seed();
      const before = d.prepare('select * from audit_events where seq = ?').get(seq);
      d.prepare(`update audit_events set ${column} = ${expr} where seq = ?`).run(seq);
      const after = d.prepare('select * from audit_events where seq = ?').get(seq);
      if (JSON.stringify(after) === JSON.stringify(before)) {
        d.close();
        continue; // this row had nothing the expression changes
      }
      const r = verifySqliteRange(d, Number.MIN_SAFE_INTEGER, 2_500);
      expect(r.problem).toEqual({
        seq,
        reason: "hash does not match the event's content (changed after it was written)",
      });
      expect(r.end.seq).toBe(seq - 1);
      d.close();
    }
  });
});
