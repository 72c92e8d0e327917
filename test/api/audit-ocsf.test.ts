import { describe, expect, it } from 'vitest';
import { checkpointToOcsf, OCSF_MAPPINGS, OCSF_VERSION, toOcsf } from '../../src/api/audit-ocsf.js';
import { AUDIT_EVENT_TYPES, type AuditEvent } from '../../src/api/schemas.js';

/**
 * Each audit event type as an OCSF event, checked against what the OCSF schema 1.8.0 requires,
 * listed here by hand from github.com/ocsf/ocsf-schema at tag 1.8.0 (not read from the mapping):
 *
 * - events/base_event.json: activity_id, category_uid, class_uid, metadata, severity_id, time,
 *   type_uid are required; objects/metadata.json: product and version; objects/product.json
 *   (an _entity): at least one of name, uid.
 * - events/iam/authentication.json (3002): user; at least one of service, dst_endpoint.
 * - events/iam/authorize_session.json (3003): user; just one of privileges, group.
 * - events/iam/entity_management.json (3004): entity (objects/managed_entity.json: at least one
 *   of name, uid, device, group, org, policy, user).
 * - events/iam/user_access.json (3005): user, privileges.
 * - objects/user.json: at least one of account, name, uid; objects/actor.json: at least one of
 *   process, user, invoked_by, session, app_name, app_uid.
 * - categories.json: iam is 3; base_event: class 0 in category 0 (Uncategorized).
 */

type Json = Record<string, unknown>;

const REQUIRED: Record<
  number,
  { name: string; category: number; fields: string[]; activities: number[] }
> = {
  0: { name: 'Base Event', category: 0, fields: [], activities: [0, 99] },
  1007: {
    name: 'Process Activity',
    category: 1,
    fields: ['actor', 'device', 'process'],
    activities: [0, 1, 2, 3, 4, 5, 99],
  },
  3002: {
    name: 'Authentication',
    category: 3,
    fields: ['user'],
    activities: [0, 1, 2, 3, 4, 5, 6, 7, 99],
  },
  3003: { name: 'Authorize Session', category: 3, fields: ['user'], activities: [0, 1, 2, 99] },
  3004: {
    name: 'Entity Management',
    category: 3,
    fields: ['entity'],
    activities: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99],
  },
  3005: {
    name: 'User Access Management',
    category: 3,
    fields: ['user', 'privileges'],
    activities: [0, 1, 2, 99],
  },
};
const BASE_REQUIRED = [
  'activity_id',
  'category_uid',
  'class_uid',
  'metadata',
  'severity_id',
  'time',
  'type_uid',
];

const atLeastOne = (o: Json | undefined, keys: string[]) =>
  o !== undefined && keys.some((k) => o[k] !== undefined && o[k] !== null && o[k] !== '');

function checkSchema(e: Json): void {
  const cls = e.class_uid as number;
  const spec = REQUIRED[cls];
  expect(spec, `class ${cls}`).toBeDefined();
  for (const f of [...BASE_REQUIRED, ...spec!.fields]) expect(e, f).toHaveProperty(f);
  expect(e.class_name).toBe(spec!.name);
  expect(e.category_uid).toBe(spec!.category);
  expect(spec!.activities).toContain(e.activity_id);
  expect(e.type_uid).toBe(cls * 100 + (e.activity_id as number));
  expect([0, 1, 2, 3, 4, 5, 6, 99]).toContain(e.severity_id);
  expect([0, 1, 2, 99]).toContain(e.status_id);
  expect(Number.isInteger(e.time)).toBe(true);
  const metadata = e.metadata as Json;
  expect(metadata.version).toBe('1.8.0');
  expect(atLeastOne(metadata.product as Json, ['name', 'uid'])).toBe(true);
  expect(
    atLeastOne(e.actor as Json, [
      'process',
      'user',
      'invoked_by',
      'session',
      'app_name',
      'app_uid',
    ]),
  ).toBe(true);
  if (e.user !== undefined)
    expect(atLeastOne(e.user as Json, ['account', 'name', 'uid'])).toBe(true);
  if (cls === 3002) expect(atLeastOne(e, ['service', 'dst_endpoint'])).toBe(true);
  if (cls === 3003) expect([e.privileges, e.group].filter((x) => x !== undefined)).toHaveLength(1);
  if (cls === 3004)
    expect(
      atLeastOne(e.entity as Json, ['name', 'uid', 'device', 'group', 'org', 'policy', 'user']),
    ).toBe(true);
  if (cls === 1007) {
    expect((e.device as Json).type_id).toBeTypeOf('number');
    expect(atLeastOne(e.process as Json, ['pid', 'uid', 'cmd_line', 'name'])).toBe(true);
  }
  if (cls === 3005 || cls === 3003) {
    expect(Array.isArray(e.privileges)).toBe(true);
    expect((e.privileges as unknown[]).every((p) => typeof p === 'string')).toBe(true);
  }
}

const alice = { iss: 'https://idp.example.com', sub: 'alice-sub', name: 'Alice' };
const lee = { iss: 'https://idp.example.com', sub: 'lee-sub', name: 'Lee' };
let seq = 0;
const event = (type: string, data: Json, over: Partial<AuditEvent> = {}): AuditEvent => ({
  seq: ++seq,
  at: '2025-03-01T10:00:00.123Z',
  type,
  request_id: 'req_7Hq2Xn4pQr9a',
  actor: alice,
  data,
  prev_hash: 'a'.repeat(64),
  hash: 'b'.repeat(64),
  ...over,
});

const SAMPLES: AuditEvent[] = [
  event('request.created', { role: 'prod-deploy', reason: 'hotfix', duration: '15m' }),
  event('review.recorded', { decision: 'approve', comment: 'ok' }, { actor: lee }),
  event('request.approved', { expires_at: '2025-03-01T10:15:00.000Z' }, { actor: lee }),
  event('request.denied', { denials: 1 }, { actor: lee }),
  event('request.cancelled', { role: 'prod-deploy' }),
  event(
    'request.expired',
    { from: 'pending', deadline: '2025-03-01T11:00:00.000Z' },
    { actor: null },
  ),
  event(
    'request.expired',
    { from: 'approved', deadline: '2025-03-01T11:00:00.000Z' },
    { actor: null },
  ),
  event('request.revoked', { window_ends_at: '2025-03-01T10:15:00.000Z' }, { actor: lee }),
  event('credential.minted', {
    jti: 'j1',
    aud: 'https://k8s.example.com',
    kid: 'k1',
    iat: '2025-03-01T10:00:00.000Z',
    exp: '2025-03-01T10:15:00.000Z',
  }),
  event(
    'session.exchanged',
    {
      issuer: 'https://token.actions.githubusercontent.com',
      subject: 'repo:acme/app:ref:refs/heads/main',
      trusted_issuer: 'github',
      jti: 's1',
      exp: '2025-03-01T10:10:00.000Z',
    },
    {
      request_id: null,
      actor: { iss: 'https://jit.example.com', sub: 'github:repo:acme/app', name: 'github' },
    },
  ),
  event('key.created', { kid: 'kid-2', alg: 'ES256' }, { request_id: null, actor: null }),
  event(
    'key.rotated',
    { kid: 'kid-2', previous: 'kid-1', alg: 'ES256', reason: 'yearly' },
    { request_id: null },
  ),
  event(
    'key.retired',
    { kid: 'kid-1', alg: 'ES256', forced: false },
    { request_id: null, actor: null },
  ),
  event('command.started', {
    use_id: 'use_1',
    kind: 'exec',
    role: 'prod-deploy',
    host: 'laptop-7',
    os_user: 'alice',
    cwd: '/src',
    command: ['kubectl', 'apply', '-f', 'x.yaml'],
    started_at: '2025-03-01T10:01:00.000Z',
  }),
  event('command.ended', {
    use_id: 'use_1',
    kind: 'exec',
    role: 'prod-deploy',
    host: 'laptop-7',
    os_user: 'alice',
    cwd: '/src',
    command: ['kubectl'],
    started_at: '2025-03-01T10:01:00.000Z',
    ended_at: '2025-03-01T10:02:00.000Z',
    exit_code: 0,
    ended_by: 'revoked',
  }),
  event(
    'access_review.started',
    {
      campaign_id: 'ar_7Hq2Xn4pQr9a',
      roles: ['prod-deploy'],
      reviewers: ['group:security'],
      items: 4,
    },
    { request_id: null },
  ),
  ...(['decided', 'closed', 'reminder', 'overdue'] as const).map((what) =>
    event(
      `access_review.${what}`,
      { campaign_id: 'ar_7Hq2Xn4pQr9a', roles: ['prod-deploy'], reviewers: ['group:security'] },
      { request_id: null, actor: what === 'reminder' || what === 'overdue' ? null : lee },
    ),
  ),
  event('some.future.event', { anything: true }, { request_id: null }),
];

describe('OCSF output', () => {
  const request = { role: 'prod-deploy', requester: alice };
  const mapped = SAMPLES.map((e) => ({
    e,
    o: toOcsf(e, { broker: 'https://jit.example.com', request }),
  }));

  it('has every field its class requires, for every event type', () => {
    for (const { e, o } of mapped) {
      try {
        checkSchema(o);
      } catch (err) {
        throw new Error(`${e.type}: ${(err as Error).message}`);
      }
    }
    expect(OCSF_VERSION).toBe('1.8.0');
  });

  it('maps each type to the class that fits', () => {
    const classOf = Object.fromEntries(
      mapped.map(({ e, o }) => [
        `${e.type}${e.type === 'request.expired' ? ` (${String(e.data.from)})` : ''}`,
        [o.class_uid, o.activity_name],
      ]),
    );
    expect(classOf).toEqual({
      'request.created': [3004, 'Create'],
      'review.recorded': [3004, 'Update'],
      'request.approved': [3005, 'Assign Privileges'],
      'request.denied': [3004, 'Update'],
      'request.cancelled': [3004, 'Update'],
      'request.expired (pending)': [3004, 'Update'],
      'request.expired (approved)': [3005, 'Revoke Privileges'],
      'request.revoked': [3005, 'Revoke Privileges'],
      'credential.minted': [3003, 'Assign Privileges'],
      'session.exchanged': [3002, 'Logon'],
      'key.created': [3004, 'Create'],
      'key.rotated': [3004, 'Update'],
      'key.retired': [3004, 'Disable'],
      'access_review.started': [3004, 'Create'],
      'access_review.decided': [3004, 'Update'],
      'access_review.closed': [3004, 'Update'],
      'access_review.reminder': [3004, 'Update'],
      'access_review.overdue': [3004, 'Update'],
      'command.started': [1007, 'Launch'],
      'command.ended': [1007, 'Terminate'],
      'some.future.event': [0, 'Other'],
    });
    // Every type the broker writes today has a class of its own.
    for (const type of AUDIT_EVENT_TYPES)
      expect(
        Object.keys(OCSF_MAPPINGS).some((k) => k === type || k.startsWith(`${type} (`)),
        type,
      ).toBe(true);
  });

  it('keeps the chain and the event itself, and names the people', () => {
    const { e: source, o: approved } = mapped.find(({ e }) => e.type === 'request.approved')!;
    expect(approved).toMatchObject({
      time: Date.parse('2025-03-01T10:00:00.123Z'),
      user: { uid: 'alice-sub', name: 'Alice', domain: 'https://idp.example.com' },
      privileges: ['prod-deploy'],
      actor: { user: { uid: 'lee-sub' } },
      metadata: {
        uid: 'b'.repeat(64),
        sequence: source.seq,
        correlation_uid: 'req_7Hq2Xn4pQr9a',
        event_code: 'request.approved',
      },
      unmapped: {
        prev_hash: 'a'.repeat(64),
        hash: 'b'.repeat(64),
        data: { expires_at: '2025-03-01T10:15:00.000Z' },
      },
    });
    const minted = mapped.find(({ e }) => e.type === 'credential.minted')!.o;
    expect(minted.session).toEqual({
      uid: 'j1',
      issuer: 'https://jit.example.com',
      created_time: Date.parse('2025-03-01T10:00:00.000Z'),
      expiration_time: Date.parse('2025-03-01T10:15:00.000Z'),
    });
    const pipeline = mapped.find(({ e }) => e.type === 'session.exchanged')!.o;
    expect(pipeline).toMatchObject({
      user: {
        uid: 'repo:acme/app:ref:refs/heads/main',
        type_id: 4,
        domain: 'https://token.actions.githubusercontent.com',
      },
      service: { name: 'jitctl broker', uid: 'https://jit.example.com' },
    });
    const expiry = mapped.find(({ e }) => e.type === 'request.expired')!.o;
    expect(expiry.actor).toEqual({ app_name: 'jitctl broker' });
  });

  it('without the request’s facts, still complete (role unknown)', () => {
    const o = toOcsf(event('request.approved', {}, { actor: lee }));
    checkSchema(o);
    expect(o.privileges).toEqual(['unknown role']);
  });

  it('a checkpoint is a Base Event carrying the JWS', () => {
    const c = {
      jws: 'h.p.s',
      seq: 12,
      hash: 'c'.repeat(64),
      signed_at: '2025-03-01T11:00:00.000Z',
      kid: 'k1',
    };
    const o = checkpointToOcsf(c);
    checkSchema(o);
    expect(o.unmapped).toEqual({ type: 'audit.checkpoint', checkpoint: c });
    expect(o).not.toHaveProperty('metadata.sequence');
  });
});
