import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openCheckpoint } from '../../../src/api/audit-checkpoint.js';
import type { SinkTuning } from '../../../src/server/audit/sinks/worker.js';
import {
  type Dialect,
  http,
  rawSql,
  startTestBroker,
  type TestBroker,
} from '../../support/broker.js';
import { type ReceivedHook, webhookReceiver } from '../../support/receivers.js';
import { actor, file, POLICY, people } from '../helpers.js';

/**
 * Audit sinks end to end: the real broker on SQLite and PostgreSQL, real HTTP receivers (one
 * verifying Standard Webhooks signatures with the standardwebhooks library), real files. What is
 * asserted is what a SIEM would see: every event once (or again, recognisable by seq), in order,
 * nothing lost across receiver outages and broker restarts.
 */

const SECRET = `whsec_${Buffer.alloc(32, 0x3c).toString('base64')}`;
const HEC_TOKEN = 'hec-token-5b1f-never-logged';
/** Fast retries; what is asserted never depends on how fast. */
const TUNING: SinkTuning = {
  pollIntervalMs: 50,
  backoffMs: 20,
  maxBackoffMs: 200,
  timeoutMs: 5_000,
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function receiver(opts: Parameters<typeof webhookReceiver>[0] = {}) {
  const r = await webhookReceiver(opts);
  cleanups.push(() => r.close());
  return r;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jitctl-sink-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function broker(opts: {
  sinks: object[];
  dialect?: Dialect;
  dbUrl?: string;
  issuer?: TestBroker['issuer'];
  clock?: TestBroker['clock'];
  checkpointIntervalMs?: number | null;
  keep?: boolean;
}): Promise<TestBroker> {
  const b = await startTestBroker({
    policy: POLICY,
    ...(opts.dialect ? { dialect: opts.dialect } : {}),
    ...(opts.dbUrl ? { dbUrl: opts.dbUrl } : {}),
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    settings: {
      webhook_secrets: JSON.stringify({ default: 'env:JIT_WEBHOOK_SECRET' }),
      audit_sinks: JSON.stringify(opts.sinks),
    },
    start: {
      env: { JIT_WEBHOOK_SECRET: SECRET, JIT_HEC_TOKEN: HEC_TOKEN },
      audit: { sinks: TUNING, checkpointIntervalMs: opts.checkpointIntervalMs ?? null },
    },
  });
  if (!opts.keep) cleanups.push(() => b.close());
  return b;
}

/** `n` self-service requests (created and approved at once: two events each). */
async function activity(b: TestBroker, n: number): Promise<void> {
  const alice = actor(b, people.alice);
  for (let i = 0; i < n; i++) await file(alice, { role: 'self-service', reason: `batch ${i}` });
}

async function headSeq(b: TestBroker): Promise<number> {
  const rows = (await rawSql(b.dbUrl, 'select seq from audit_head')) as { seq: number }[];
  return Number(rows[0]!.seq);
}

type Rec = { seq?: number; type: string; checkpoint?: { seq: number; jws: string } };
/** The records of the batches the receiver accepted, in the order it accepted them. */
const accepted = (hooks: ReceivedHook[]): Rec[] =>
  hooks
    .filter((h) => h.status >= 200 && h.status < 300)
    .flatMap((h) => (h.body.records as Rec[]) ?? []);
const eventSeqs = (records: Rec[]) =>
  records.filter((r) => typeof r.seq === 'number').map((r) => r.seq!);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.each<Dialect>(['sqlite', 'postgres'])('a signed webhook sink on %s', (dialect) => {
  it('catches up after the receiver was down, and after a broker restart, losing nothing', async () => {
    let up = false;
    const hook = await receiver({
      secret: SECRET,
      respond: (res) => res.writeHead(up ? 204 : 503).end(),
    });
    const sinks = [{ name: 'siem', webhook: hook.url, batch: 7 }];
    const first = await broker({ sinks, dialect, keep: true });
    cleanups.push(() => first.close());
    await activity(first, 10);
    // The receiver refuses: the sink keeps trying, and filing never waited for it.
    await hook.until((r) => r.filter((h) => h.status === 503).length >= 3);
    await first.broker.close();
    const second = await broker({
      sinks,
      dialect,
      dbUrl: first.dbUrl,
      issuer: first.issuer,
      clock: first.clock,
    });
    await activity(second, 5);
    const head = await headSeq(second);
    up = true;
    await hook.until((r) => eventSeqs(accepted(r)).at(-1) === head);
    const seqs = eventSeqs(accepted(hook.received));
    expect(seqs).toEqual(range(1, head));
    expect(hook.received.every((h) => h.verified)).toBe(true);
    // A retried batch keeps its webhook-id; receivers drop repeats by it or by seq.
    const ok = hook.received.filter((h) => h.status === 204);
    expect(ok[0]!.headers['webhook-id']).toBe(`audit_siem_1-7_0`);
    expect(
      hook.received.filter((h) => h.headers['webhook-id'] === 'audit_siem_1-7_0').length,
    ).toBeGreaterThan(1);
    const first7 = accepted([ok[0]!]);
    expect(first7[0]).toMatchObject({ seq: 1, type: 'request.created', prev_hash: '0'.repeat(64) });
    expect(Object.keys(first7[0]!)).toEqual([
      'seq',
      'at',
      'type',
      'request_id',
      'actor',
      'data',
      'prev_hash',
      'hash',
    ]);
    // Caught up: the lag is zero in /metrics and /readyz.
    await vi.waitFor(
      async () => {
        const metrics = await http(second.url, 'GET', '/metrics');
        expect(metrics.text).toContain('jitctl_audit_sink_lag_events{sink="siem"} 0\n');
      },
      { timeout: 10_000, interval: 50 },
    );
    const ready = await http<{ audit_sinks: { name: string; lag_events: number }[] }>(
      second.url,
      'GET',
      '/readyz',
    );
    expect(ready.status).toBe(200);
    expect(ready.body.audit_sinks).toEqual([
      expect.objectContaining({
        name: 'siem',
        kind: 'webhook',
        lag_events: 0,
        delivered_seq: head,
      }),
    ]);
    expect(second.logs()).toContain('audit sink delivery failed; will retry');
    expect(first.logs() + second.logs()).not.toContain(SECRET);
  });
});

describe('replicas on PostgreSQL', () => {
  it('deliver one HTTP sink together: in order, nothing twice, and the other takes over when one stops', async () => {
    const hook = await receiver({ secret: SECRET });
    const sinks = [{ name: 'siem', webhook: hook.url, batch: 3 }];
    const a = await broker({ sinks, dialect: 'postgres', keep: true });
    cleanups.push(() => a.close());
    const b = await broker({
      sinks,
      dialect: 'postgres',
      dbUrl: a.dbUrl,
      issuer: a.issuer,
      clock: a.clock,
    });
    await activity(a, 3);
    await activity(b, 3);
    let head = await headSeq(a);
    await hook.until((r) => eventSeqs(accepted(r)).at(-1) === head);
    await a.broker.close();
    await activity(b, 3);
    head = await headSeq(b);
    await hook.until((r) => eventSeqs(accepted(r)).at(-1) === head);
    expect(eventSeqs(accepted(hook.received))).toEqual(range(1, head));
  });
});

describe('checkpoints in the stream', () => {
  it('each checkpoint follows the event it names, and verifies', async () => {
    const hook = await receiver({ secret: SECRET });
    const b = await broker({
      sinks: [{ name: 'siem', webhook: hook.url }],
      checkpointIntervalMs: 60_000,
    });
    await activity(b, 3);
    const cp = await actor(b, people.ada).get<{ seq: number }>('/v1/audit/checkpoint');
    expect(cp.status).toBe(200);
    await hook.until((r) =>
      accepted(r).some((x) => x.type === 'audit.checkpoint' && x.checkpoint!.seq === cp.body.seq),
    );
    const records = accepted(hook.received);
    const at = records.findIndex(
      (x) => x.type === 'audit.checkpoint' && x.checkpoint!.seq === cp.body.seq,
    );
    expect(records[at - 1]!.seq).toBe(cp.body.seq);
    expect(records[at]).not.toHaveProperty('seq');
    const opened = await openCheckpoint(records[at]!.checkpoint!.jws);
    expect(opened.claims.seq).toBe(cp.body.seq);
  });
});

describe('a Splunk HEC sink', () => {
  it('sends OCSF events with the token from the environment, never logging it', async () => {
    const hec = await receiver();
    const b = await broker({
      sinks: [
        {
          name: 'splunk',
          splunk_hec: hec.url,
          token: 'env:JIT_HEC_TOKEN',
          format: 'ocsf',
          index: 'security',
        },
      ],
    });
    await activity(b, 2);
    const head = await headSeq(b);
    const events = () =>
      hec.received.flatMap((h) =>
        h.raw
          .split('\n')
          .map((l) => JSON.parse(l) as { time: number; event: Record<string, unknown> }),
      );
    await hec.until(() =>
      events().some((e) => (e.event.metadata as { sequence: number }).sequence === head),
    );
    expect(hec.received[0]!.headers.authorization).toBe(`Splunk ${HEC_TOKEN}`);
    const all = events();
    expect(all.map((e) => (e.event.metadata as { sequence: number }).sequence)).toEqual(
      range(1, head),
    );
    const created = all.find(
      (e) => (e.event.metadata as { event_code: string }).event_code === 'request.created',
    )!;
    expect(created).toMatchObject({
      sourcetype: 'jitctl:audit:ocsf',
      source: 'jitctl',
      index: 'security',
    });
    expect(created.event).toMatchObject({ class_uid: 3004, activity_id: 1, type_uid: 300401 });
    const approved = all.find(
      (e) => (e.event.metadata as { event_code: string }).event_code === 'request.approved',
    )!;
    expect(approved.event).toMatchObject({
      class_uid: 3005,
      user: { uid: people.alice.sub, name: 'Alice' },
      privileges: ['self-service'],
    });
    expect(created.time).toBeCloseTo((created.event.time as number) / 1000, 3);
    expect(b.logs()).not.toContain(HEC_TOKEN);
  });
});

describe('a JSON-lines file sink', () => {
  it('rotates by size, keeps N files 0600, and resumes after a restart without repeats', async () => {
    const dir = tempDir();
    const path = join(dir, 'logs', 'audit.jsonl');
    const sinks = [{ name: 'archive', file: path, max_size: '4KiB', keep: 2 }];
    const first = await broker({ sinks, keep: true });
    cleanups.push(() => first.close());
    await activity(first, 20);
    const head1 = await headSeq(first);
    const lines = () =>
      [`${path}.2`, `${path}.1`, path]
        .flatMap((p) => {
          try {
            return readFileSync(p, 'utf8').split('\n').filter(Boolean);
          } catch {
            return [];
          }
        })
        .map((l) => JSON.parse(l) as Rec);
    await vi.waitFor(() => expect(eventSeqs(lines()).at(-1)).toBe(head1), {
      timeout: 10_000,
      interval: 20,
    });
    const names = readdirSync(join(dir, 'logs')).sort();
    expect(names).toEqual(['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2']);
    for (const n of names) {
      const st = statSync(join(dir, 'logs', n));
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.size).toBeLessThanOrEqual(4096);
    }
    expect(statSync(join(dir, 'logs')).mode & 0o777).toBe(0o700);
    // The oldest files were deleted; what is kept is consecutive up to the head.
    const kept = eventSeqs(lines());
    expect(kept[0]).toBeGreaterThan(1);
    expect(kept).toEqual(range(kept[0]!, head1));

    // Stopped mid-write: a cut line at the end is repaired at the next start, not built upon.
    await first.broker.close();
    appendFileSync(path, '{"seq":99999,"at":"2025-');
    const second = await broker({
      sinks,
      dbUrl: first.dbUrl,
      issuer: first.issuer,
      clock: first.clock,
    });
    await activity(second, 2);
    const head2 = await headSeq(second);
    await vi.waitFor(() => expect(eventSeqs(lines()).at(-1)).toBe(head2), {
      timeout: 10_000,
      interval: 20,
    });
    const after = eventSeqs(lines());
    expect(after).toEqual(range(after[0]!, head2));
    expect(readFileSync(path, 'utf8')).not.toContain('99999');
  });

  it('refuses to start on a file others can read, naming it', async () => {
    const dir = tempDir();
    const path = join(dir, 'audit.jsonl');
    writeFileSync(path, '', { mode: 0o644 });
    await expect(broker({ sinks: [{ name: 'archive', file: path }] })).rejects.toThrow(
      /audit\.jsonl is readable or writable by other users \(mode 0644\).*chmod 600/,
    );
  });
});

describe('lag and readiness', () => {
  it('a lagging sink shows in /metrics and /readyz; readiness fails only past its max_lag', async () => {
    const hook = await receiver({ secret: SECRET, respond: (res) => res.writeHead(500).end() });
    const b = await broker({
      sinks: [
        { name: 'strict', webhook: hook.url, max_lag: '1m' },
        { name: 'relaxed', webhook: hook.url },
      ],
    });
    await activity(b, 3);
    const head = await headSeq(b);
    await vi.waitFor(
      async () => {
        const m = await http(b.url, 'GET', '/metrics');
        expect(m.text).toContain(`jitctl_audit_sink_lag_events{sink="relaxed"} ${head}\n`);
        expect(m.text).toMatch(/jitctl_audit_sink_failures_total\{sink="strict"\} [1-9]/);
      },
      { timeout: 10_000, interval: 50 },
    );
    expect((await http(b.url, 'GET', '/readyz')).status).toBe(200);
    // The oldest undelivered event is now two minutes old.
    b.clock.advance(120_000);
    await vi.waitFor(
      async () => {
        const r = await http<{ error: { message: string }; audit_sinks: unknown[] }>(
          b.url,
          'GET',
          '/readyz',
        );
        expect(r.status).toBe(503);
        expect(r.body.error.message).toMatch(/audit sink strict is \d+ s behind \(max_lag 60 s\)/);
        expect(r.body.error.message).not.toContain('relaxed');
      },
      { timeout: 10_000, interval: 50 },
    );
    // Transitions never wait for a sink.
    const req = await file(actor(b, people.alice), { role: 'self-service' });
    expect(req.state).toBe('approved');
  });
});
