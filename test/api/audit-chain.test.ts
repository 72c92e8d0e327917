import { describe, expect, it } from 'vitest';
import {
  type ChainedContent,
  ChainVerifier,
  canonicalJson,
  eventHash,
  GENESIS_HASH,
} from '../../src/api/audit-chain.js';

function chain(n: number) {
  const events: (ChainedContent & { prev_hash: string; hash: string })[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const content: ChainedContent = {
      seq,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      type: 'request.created',
      request_id: `req_${seq}`,
      actor: { iss: 'https://idp', sub: `u${seq}`, name: null },
      data: { role: 'prod-deploy', duration: '15m', reason: `r${seq}` },
    };
    const hash = eventHash(prev, content);
    events.push({ ...content, prev_hash: prev, hash });
    prev = hash;
  }
  return events;
}

describe('canonicalJson', () => {
  it('sorts keys recursively, drops undefined members and keeps arrays in order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined }, e: null })).toBe(
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1,"e":null}',
    );
    expect(canonicalJson('\u001b[31m')).toBe('"\\u001b[31m"');
  });
});

describe('ChainVerifier', () => {
  it('accepts an intact chain', () => {
    const v = new ChainVerifier();
    for (const e of chain(50)) expect(v.push(e)).toBe(true);
    expect(v.problem).toBeUndefined();
    expect(v.count).toBe(50);
  });

  it('names a changed middle event', () => {
    const events = chain(10);
    events[4]!.data = { ...events[4]!.data, duration: '1h' };
    const v = new ChainVerifier();
    for (const e of events) v.push(e);
    expect(v.problem).toEqual({
      seq: 5,
      reason: expect.stringContaining('changed after it was written'),
    });
  });

  it('names a removed event and a rewritten hash', () => {
    const removed = chain(10);
    removed.splice(6, 1);
    const v1 = new ChainVerifier();
    for (const e of removed) v1.push(e);
    expect(v1.problem?.seq).toBe(8);

    const rewritten = chain(10);
    rewritten[2]!.data = { x: 1 };
    rewritten[2]!.hash = eventHash(rewritten[2]!.prev_hash, rewritten[2]!);
    const v2 = new ChainVerifier();
    for (const e of rewritten) v2.push(e);
    expect(v2.problem).toEqual({ seq: 4, reason: expect.stringContaining('prev_hash') });
  });
});
