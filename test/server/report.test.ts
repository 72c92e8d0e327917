import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report, RoleReport } from '../../src/api/governance.js';
import { accessByGroups, Governance } from '../../src/server/governance/index.js';
import { ReportService } from '../../src/server/governance/report/compute.js';
import { renderReport } from '../../src/server/governance/report/render.js';
import { alice, bob, lee, MIN, NOW, POLICY, seed } from '../support/report-history.js';
import { migratedDatabase } from '../support/store.js';

/**
 * The access report against a seeded history whose every figure is worked out by hand, on SQLite
 * and PostgreSQL (the same SQL must give the same numbers): counts per outcome, nearest-rank
 * median and p90 time to decision, asked vs used time, who approved whom (and a mutual pair),
 * break-glass uses and their review, frequent requesters, commands run under grants, and the
 * entries and people eligible but unused. Then the formats: HTML escapes, charts, no script.
 */

describe.each(['sqlite', 'postgres'] as const)('the access report on %s', (dialect) => {
  let store: Awaited<ReturnType<typeof migratedDatabase>>;
  let report: Report;
  const role = (name: string): RoleReport => report.roles.find((r) => r.role === name)!;
  beforeAll(async () => {
    store = await migratedDatabase(dialect);
    await seed(store.db);
    const service = new ReportService({
      db: store.db,
      clock: { now: () => NOW },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
    });
    report = await service.compute({ since: '30d' });
  });
  afterAll(async () => store?.close());

  it('counts requests per outcome in the period only', () => {
    expect(report.totals).toEqual({
      requests: 11,
      approved: 9,
      denied: 1,
      break_glass: 2,
      command_runs: 4,
    });
    expect(role('prod').requests).toEqual({
      filed: 8,
      approved: 6,
      approved_automatically: 2,
      denied: 1,
      expired: 1,
      cancelled: 0,
      pending: 0,
      revoked: 1,
    });
    expect(role('ro').requests).toMatchObject({ filed: 3, approved: 3, approved_automatically: 3 });
  });

  it('times decisions by nearest rank, people’s decisions only', () => {
    expect(role('prod').time_to_decision).toEqual({
      decided: 5,
      median: '15m',
      median_ms: 15 * MIN,
      p90: '45m',
      p90_ms: 45 * MIN,
    });
    expect(role('ro').time_to_decision).toMatchObject({ decided: 0, median: null, p90: null });
  });

  it('compares time asked with time used (revoked early counts until the revocation)', () => {
    expect(role('prod').durations).toEqual({
      grants: 6,
      asked_avg: '1h5m',
      asked_avg_ms: 65 * MIN,
      granted_avg: '1h5m',
      granted_avg_ms: 65 * MIN,
      used_avg: '50m',
      used_avg_ms: 50 * MIN,
      used_share: 0.769,
      ended_early: 1,
      still_active: 0,
    });
  });

  it('says who approved whom, and finds the pair approving each other', () => {
    const pairs = role('prod').approver_pairs.map((p) => [
      p.reviewer.sub,
      p.requester.sub,
      p.approvals,
      p.mutual,
    ]);
    expect(pairs).toEqual([
      ['lee-sub', 'alice-sub', 2, true],
      ['alice-sub', 'lee-sub', 1, true],
      ['lin-sub', 'bob-sub', 1, false],
    ]);
    expect(report.mutual_approvals).toEqual([
      { a: alice, b: lee, a_approved_b: 1, b_approved_a: 2 },
    ]);
  });

  it('lists break-glass uses with their review', () => {
    const bg = role('prod').break_glass;
    expect(bg).toMatchObject({ uses: 2, acknowledged: 1, flagged: 0, unreviewed: 0, overdue: 1 });
    expect(bg.items.map((i) => [i.request_id, i.status, i.reviewer?.sub ?? null])).toEqual([
      ['req_b1', 'overdue', null],
      ['req_b2', 'acknowledged', 'lee-sub'],
    ]);
  });

  it('flags people who requested a role 3 times within 24 hours', () => {
    expect(report.frequent_threshold).toEqual({ count: 3, within: '1d' });
    expect(role('ro').frequent).toEqual([{ person: bob, most_within: 3, requests: 3 }]);
    expect(role('prod').frequent).toEqual([]);
  });

  it('counts the commands run under each role, by program', () => {
    expect(role('prod').commands).toEqual({
      runs: 4,
      people: 2,
      failed: 2,
      late: 1,
      programs: [
        { program: 'kubectl', runs: 2, people: 1, failed: 1, last_at: expect.any(String) },
        { program: '(shell)', runs: 1, people: 1, failed: 0, last_at: expect.any(String) },
        { program: 'psql', runs: 1, people: 1, failed: 1, last_at: expect.any(String) },
      ],
    });
    expect(role('ro').commands.runs).toBe(0);
  });

  it('names entries and people eligible but unused (least-privilege candidates)', () => {
    expect(role('prod').unused.entries).toEqual([]);
    expect(role('prod').unused.people.map((p) => p.person.sub)).toEqual(['dave-sub']);
    expect(role('ro').unused.entries).toEqual([{ entry: 'group:contractors', known: 1, used: 0 }]);
    expect(role('ro').unused.people_total).toBe(3);
    expect(report.findings.map((f) => f.kind).sort()).toEqual([
      'break_glass_overdue',
      'frequent_requester',
      'mutual_approval',
      'unused_entry',
    ]);
  });

  it('one role, another period, and refusals of bad input', async () => {
    const service = new ReportService({
      db: store.db,
      clock: { now: () => NOW },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
    });
    const ro = await service.compute({ role: 'ro', since: '2026-06-01' });
    expect(ro.roles.map((r) => r.role)).toEqual(['ro']);
    expect(ro.totals.requests).toBe(3);
    const week = await service.compute({ since: '4d' });
    expect(week.totals.requests).toBe(2);
    await expect(service.compute({ role: 'nope' })).rejects.toMatchObject({
      status: 400,
      code: 'unknown_role',
    });
    await expect(service.compute({ since: 'yesterday' })).rejects.toMatchObject({ status: 400 });
    await expect(service.compute({ since: '2100-01-01' })).rejects.toMatchObject({ status: 400 });
    await expect(service.compute({ frequent: '1/1h' })).rejects.toMatchObject({ status: 400 });
  });

  it('computes at most two reports at once per broker; a third is told to come back (429)', async () => {
    const g = new Governance({
      db: store.db,
      clock: { now: () => NOW },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
      access: accessByGroups(['auditors'], []),
    });
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const compute = g.reports.compute.bind(g.reports);
    g.reports.compute = async (q) => {
      await held;
      return compute(q);
    };
    const running = [g.report({}), g.report({})];
    await expect(g.report({})).rejects.toMatchObject({ status: 429, code: 'rate_limited' });
    release();
    expect((await Promise.all(running)).map((r) => r.totals.requests)).toEqual([11, 11]);
    expect((await g.report({})).totals.requests).toBe(11);
  });

  it('renders every format from the same figures; HTML is one offline file, escaped', () => {
    const html = renderReport(report, 'html').body;
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/i);
    expect(html).toContain('Erin &lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<img');
    const text = renderReport(report, 'text').body;
    expect(text).toContain('median 15m, 90th percentile 45m');
    const md = renderReport(report, 'md').body;
    expect(md).toContain('## prod');
    const csv = renderReport(report, 'csv').body.split('\r\n');
    expect(csv[0]).toBe('section,role,subject,metric,value');
    expect(csv).toContain('requests,prod,,filed,8');
    expect(JSON.parse(renderReport(report, 'json').body)).toEqual(report);
  });
});
