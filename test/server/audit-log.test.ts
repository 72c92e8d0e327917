import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChainedContent,
  canonicalJson,
  eventHash,
  GENESIS_HASH,
  storedEventHash,
} from '../../src/api/audit-chain.js';
import { verifyAuditTable } from '../../src/server/audit/log.js';
import { type Dialect, rawSql, startTestBroker, type TestBroker } from '../support/broker.js';
import { actor, file, POLICY, people } from './helpers.js';

/**
 * The audit log as stored: the fast hash over stored canonical text is the chain's definition
 * (SHA-256 over the previous hash, a newline and the canonical JSON of the event), the broker's
 * rows verify, and the table walk reports tampering of every kind on both dialects.
 */

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary' }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: 'binary' }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('storedEventHash', () => {
  it('equals the definition for any content (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          type: fc.string({ unit: 'binary' }),
          request_id: fc.option(fc.string({ unit: 'binary' })),
          actor: fc.option(
            fc.record({
              iss: fc.string({ unit: 'binary' }),
              sub: fc.string({ unit: 'binary' }),
              name: fc.option(fc.string({ unit: 'grapheme' })),
            }),
          ),
          data: fc.dictionary(fc.string({ unit: 'binary' }), json, { maxKeys: 6 }),
        }),
        fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }),
        (content: ChainedContent, prev) => {
          const definition = createHash('sha256')
            .update(prev)
            .update('\n')
            .update(canonicalJson(content))
            .digest('hex');
          expect(eventHash(prev, content)).toBe(definition);
          expect(
            storedEventHash(prev, {
              ...content,
              actor: content.actor === null ? null : canonicalJson(content.actor),
              data: canonicalJson(content.data),
            }),
          ).toBe(definition);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe.each<Dialect>(['sqlite', 'postgres'])('the audit table on %s', (dialect) => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker({ policy: POLICY, dialect });
    const alice = actor(b, people.alice);
    for (let i = 0; i < 3; i++) await file(alice, { role: 'self-service', reason: `r${i} \u202e` });
  });
  afterAll(async () => b?.close());

  it('verifies what the broker wrote, and stores canonical JSON without tokens', async () => {
    const result = await verifyAuditTable(b.broker.db);
    expect(result).toMatchObject({ ok: true, events: 6 });
    const rows = (await rawSql(
      b.dbUrl,
      'select type, actor, data from audit_events order by seq',
    )) as {
      type: string;
      actor: string | null;
      data: string;
    }[];
    for (const r of rows) {
      expect(canonicalJson(JSON.parse(r.data))).toBe(r.data);
      // Auto-approval is the broker's own act: no actor.
      if (r.type === 'request.approved') expect(r.actor).toBeNull();
      else expect(canonicalJson(JSON.parse(r.actor!))).toBe(r.actor);
    }
    const first = (await rawSql(b.dbUrl, 'select prev_hash from audit_events where seq = 1')) as {
      prev_hash: string;
    }[];
    expect(first[0]!.prev_hash).toBe(GENESIS_HASH);
  });

  it('accepts stored text that is not canonical but means the same (as the API walk would)', async () => {
    const [row] = (await rawSql(b.dbUrl, 'select data from audit_events where seq = 2')) as {
      data: string;
    }[];
    const spaced = JSON.stringify(JSON.parse(row!.data), null, 2);
    await rawSql(
      b.dbUrl,
      `update audit_events set data = '${spaced.replace(/'/g, "''")}' where seq = 2`,
    );
    try {
      expect((await verifyAuditTable(b.broker.db)).ok).toBe(true);
    } finally {
      await rawSql(
        b.dbUrl,
        `update audit_events set data = '${row!.data.replace(/'/g, "''")}' where seq = 2`,
      );
    }
  });

  it('reports an event slipped in past the head, and a head that does not match', async () => {
    const [last] = (await rawSql(b.dbUrl, 'select hash from audit_events where seq = 6')) as {
      hash: string;
    }[];
    const data = '{"role":"self-service"}';
    const forged = storedEventHash(last!.hash, {
      seq: 7,
      at: '2030-01-01T00:00:00.000Z',
      type: 'request.created',
      request_id: null,
      actor: null,
      data,
    });
    await rawSql(
      b.dbUrl,
      `insert into audit_events (seq, at, type, request_id, actor, data, prev_hash, hash)
       values (7, '2030-01-01T00:00:00.000Z', 'request.created', null, null, '${data}', '${last!.hash}', '${forged}')`,
    );
    try {
      const r = await verifyAuditTable(b.broker.db);
      expect(r).toMatchObject({
        ok: false,
        problem: { seq: 7, reason: expect.stringContaining('past the head') },
      });
    } finally {
      await rawSql(b.dbUrl, 'delete from audit_events where seq = 7');
    }
    const [head] = (await rawSql(b.dbUrl, 'select hash from audit_head')) as { hash: string }[];
    await rawSql(b.dbUrl, `update audit_head set hash = '${'0'.repeat(64)}'`);
    try {
      const r = await verifyAuditTable(b.broker.db);
      expect(r).toMatchObject({
        ok: false,
        problem: { seq: 6, reason: expect.stringContaining('head') },
      });
    } finally {
      await rawSql(b.dbUrl, `update audit_head set hash = '${head!.hash}'`);
    }
    expect((await verifyAuditTable(b.broker.db)).ok).toBe(true);
  });
});
