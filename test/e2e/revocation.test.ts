import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditPage } from '../../src/api/schemas.js';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { decodeSession, sessionKey } from '../../src/credentials/records.js';
import { gone } from '../exec/recorder.js';
import { http } from '../support/broker.js';
import { type DevBroker, signIn, startDevBroker, type User, user } from './support.js';

/**
 * Issue 13's story on the real `jitctl server --dev`, every step the real binary: alice gets
 * `prod` approved by lee and starts a long-running command that starts a child of its own; lee
 * revokes; both processes are gone within a second and alice's jitctl says who revoked it and
 * why; kubectl's plugin and a new exec refuse; the resource server's introspection says
 * `active: false`, and refuses alice's own sign-in; the audit log holds the command's use.
 */

vi.setConfig({ testTimeout: 120_000 });

const SECRET = 'e2e-resource-server-secret-0123456789abcdef';
const POLICY = `
roles:
  prod:
    description: Production, revocable
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 1h
    max_duration: 2h
    credential:
      audience: https://k8s.prod.example.com
      ttl: 1m
      env: { KUBE_TOKEN: "{{token}}" }
`;

let broker: DevBroker;
let alice: User;
let lee: User;
let ada: User;

beforeAll(async () => {
  broker = await startDevBroker({
    policy: POLICY,
    env: {
      JITCTL_SERVER_RESOURCE_SERVERS: JSON.stringify([
        {
          client_id: 'k8s-prod',
          client_secret_sha256: createHash('sha256').update(SECRET).digest('hex'),
        },
      ]),
    },
  });
  alice = user('alice', broker);
  lee = user('lee', broker);
  ada = user('ada', broker);
  await Promise.all([
    signIn(alice, broker, true),
    signIn(lee, broker, true),
    signIn(ada, broker, true),
  ]);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  for (const u of [alice, lee, ada]) u?.home.cleanup();
});

async function sessionOf(u: User): Promise<string> {
  const store = await openStore(createContext({ io: testIO(), env: u.env }), 'file');
  return decodeSession(await store.get(sessionKey(broker.url)))!.bearer.reveal();
}

const introspect = (token: string, authorization: string) =>
  http<Record<string, unknown>>(broker.url, 'POST', '/v1/introspect', {
    raw: new URLSearchParams({ token }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
  });
const basic = `Basic ${Buffer.from(`k8s-prod:${SECRET}`).toString('base64')}`;

describe('a lead revokes while the command runs', () => {
  it('ends the command and its child within a second, and everything after refuses', async () => {
    const filed = await alice.run(['request', 'prod', '--reason', 'deploy 42', '--no-wait']);
    expect(filed.code, filed.stderr).toBe(0);
    const id = filed.stdout.trim();
    const approved = await lee.run(['approve', id, '--yes']);
    expect(approved.code, approved.stderr).toBe(0);
    const fetched = await alice.run(['wait', id]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const credential = (await alice.credential('prod'))!;
    const token = credential.token.reveal();
    expect(decodeJwt(token).exp! - decodeJwt(token).iat!).toBe(60);
    expect((await introspect(token, basic)).body).toMatchObject({ active: true, request_id: id });

    const d = alice.home.dir;
    const run = alice.spawn([
      'exec',
      'prod',
      '--',
      'bash',
      '-c',
      `(sleep 300 & echo $! > ${d}/grandchild; wait) & echo $$ > ${d}/child; wait`,
    ]);
    const pidOf = async (name: string) => {
      const f = join(d, name);
      for (let i = 0; i < 600; i++) {
        const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
        if (text.endsWith('\n')) return Number(text);
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`no ${name}`);
    };
    const [child, grandchild] = await Promise.all([pidOf('child'), pidOf('grandchild')]);

    const revoked = lee.run(['revoke', id, '--reason', 'wrong build', '--yes']);
    let goneAt = 0;
    for (let i = 0; i < 2_000 && !goneAt; i++) {
      if (gone(child) && gone(grandchild)) goneAt = Date.now();
      else await new Promise((r) => setTimeout(r, 10));
    }
    const r = await revoked;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('no credential is minted for it again');
    expect(goneAt).toBeGreaterThan(0);
    const ended = await run.done;
    expect(ended.code).toBe(3);
    expect(ended.stderr).toMatch(
      new RegExp(
        `error: the command was ended: the grant for prod \\(${id}\\) was revoked by Lee Lead at \\d\\d:\\d\\d \\([^)]+\\): wrong build`,
      ),
    );

    // kubectl's plugin and a new exec refuse; the stored credential is gone.
    const kube = await alice.run(['credential', 'prod', '--kube']);
    expect(kube.code).toBe(3);
    expect(kube.stdout).toBe('');
    const again = await alice.run(['exec', 'prod', '--', 'echo', 'never']);
    expect(again.code).toBe(3);
    expect(again.stdout).toBe('');
    expect(await alice.credential('prod')).toBeUndefined();

    // The resource server: active false; a developer's own sign-in is not a resource server.
    expect((await introspect(token, basic)).body).toEqual({ active: false });
    const dev = await introspect(token, `Bearer ${await sessionOf(alice)}`);
    expect(dev.status).toBe(401);
    expect(dev.body).toMatchObject({ error: 'invalid_client' });
    // Who ran what: the auditor reads the command's start and its end by the revocation.
    const audit = await http<AuditPage>(broker.url, 'GET', '/v1/audit?limit=1000', {
      token: await sessionOf(ada),
    });
    // Both processes were gone within a second of the revocation the broker recorded.
    const revokedAt = Date.parse(
      audit.body.items.find((e) => e.request_id === id && e.type === 'request.revoked')!.at,
    );
    expect(goneAt - revokedAt).toBeLessThan(1_000);
    // Without a fresh mint, the last credential's exp is within the role's 1m of the revocation.
    expect(decodeJwt(token).exp! * 1000).toBeLessThanOrEqual(revokedAt + 60_000);
    const uses = audit.body.items.filter(
      (e) => e.request_id === id && e.type.startsWith('command.'),
    );
    expect(uses.map((e) => e.type)).toEqual(['command.started', 'command.ended']);
    expect(uses[1]!.data).toMatchObject({ command: ['bash'], ended_by: 'revoked' });
    expect(JSON.stringify(audit.body)).not.toContain(token);
    for (const out of alice.outputs) expect(out).not.toContain(token);
  });
});
