import type { AccessRequest } from '../../src/api/schemas.js';
import { http, type TestBroker } from '../support/broker.js';
import type { Person } from '../support/test-issuer.js';

/** The policy most broker tests run against, and the people in it. */
export const POLICY = `
# Tests file many requests per person; the per-person cap has its own tests (lifecycle-api).
max_pending: 50
roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env:
        KUBE_TOKEN: "{{token}}"
        JIT_INFO: "{{role}} {{request_id}} until {{expires_at}}"
  two-person:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 2
    denials: 2
    default_duration: 30m
    max_duration: 2h
    pending_ttl: 1h
    credential:
      audience: https://db.example.com
  self-service:
    requesters: [group:developers, group:leads]
    approvers: [group:leads]
    approvals: 0
    default_duration: 10m
    max_duration: 1h
    pending_ttl: 10m
    credential:
      audience: https://ro.example.com
      env:
        RO_TOKEN: "{{token}}"
  lead-escalation:
    requesters: [group:leads]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    credential:
      audience: https://leads.example.com
  by-name:
    requesters: [user:carol@example.com]
    approvers: [user:lee-sub]
    approvals: 1
    default_duration: 5m
    max_duration: 10m
    pending_ttl: 30m
    credential:
      audience: https://named.example.com
`;

export const people = {
  alice: { sub: 'alice-sub', name: 'Alice', email: 'alice@example.com', groups: ['developers'] },
  bob: { sub: 'bob-sub', name: 'Bob', email: 'bob@example.com', groups: ['developers'] },
  lee: { sub: 'lee-sub', name: 'Lee', email: 'lee@example.com', groups: ['leads'] },
  lin: { sub: 'lin-sub', name: 'Lin', email: 'lin@example.com', groups: ['leads'] },
  ada: { sub: 'ada-sub', name: 'Ada', email: 'ada@example.com', groups: ['auditors'] },
  root: { sub: 'root-sub', name: 'Root', email: 'root@example.com', groups: ['admins'] },
  carol: { sub: 'carol-sub', name: 'Carol', email: 'carol@example.com', groups: [] },
  mallory: { sub: 'mallory-sub', name: 'Mallory', email: 'mallory@example.com', groups: [] },
} satisfies Record<string, Person>;

/**
 * A client acting as one person against one broker. Without a fixed token it signs in afresh for
 * each call (as the CLI refreshes), so tests that move the broker's clock forward keep working.
 */
export interface Actor {
  person: Person;
  get<T = unknown>(path: string, headers?: Record<string, string>): ReturnType<typeof http<T>>;
  post<T = unknown>(
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): ReturnType<typeof http<T>>;
}

export function actor(b: TestBroker, person: Person, token?: string): Actor {
  const t = async () => token ?? (await b.issuer.token(person));
  return {
    person,
    get: async (path, headers) =>
      http(b.url, 'GET', path, { token: await t(), ...(headers ? { headers } : {}) }),
    post: async (path, body, headers) =>
      http(b.url, 'POST', path, {
        token: await t(),
        body: body === undefined ? {} : body,
        ...(headers ? { headers } : {}),
      }),
  };
}

/** Files a request and checks it was created. */
export async function file(
  a: Actor,
  body: { role: string; duration?: string; reason?: string; ticket?: string },
): Promise<AccessRequest> {
  const r = await a.post<AccessRequest>('/v1/requests', body);
  if (r.status !== 201) throw new Error(`create answered ${r.status}: ${r.text}`);
  return r.body;
}
