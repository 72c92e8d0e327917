import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MeResponse, RoleSummary } from '../../src/api/schemas.js';
import { Secret } from '../../src/api/secret.js';
import {
  clockCheck,
  credentialsCheck,
  kubectlChecks,
  tlsCheck,
  viewCheck,
} from '../../src/cli/doctor-checks.js';
import type { SessionRecord } from '../../src/credentials/records.js';

/**
 * The checks of `jitctl doctor` one by one, with the inputs that make each pass, warn and fail.
 * The command as a whole, against a real broker, is test/e2e/tools.test.ts.
 */

const root = mkdtempSync(join(tmpdir(), 'jitctl-doctor-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

describe('clock', () => {
  const probe = (skewMs: number | undefined) => ({
    config: {} as never,
    skewMs,
  });
  it('in step within 5 s, a warning up to a minute, a failure beyond (tokens would not verify)', () => {
    expect(clockCheck(probe(400))).toMatchObject({
      status: 'ok',
      message: 'in step with the broker (within 1 s)',
    });
    expect(clockCheck(probe(12_000))).toMatchObject({
      status: 'warn',
      message: '12 s behind the broker',
    });
    const far = clockCheck(probe(-300_000));
    expect(far.status).toBe('fail');
    expect(far.message).toBe(
      '300 s ahead of the broker: tokens will look expired or not yet valid',
    );
    expect(far.fix).toContain('timedatectl set-ntp true');
    expect(clockCheck(undefined).status).toBe('warn');
    expect(clockCheck(probe(undefined)).message).toContain('no Date header');
  });
});

describe('tls', () => {
  it('plain http is fine on loopback only', async () => {
    expect((await tlsCheck('http://127.0.0.1:8787')).status).toBe('ok');
    expect((await tlsCheck('http://jit.internal:8787')).status).toBe('warn');
  });
  it('a broker that does not answer fails within the network budget', async () => {
    const started = Date.now();
    const c = await tlsCheck('https://127.0.0.1:1');
    expect(c.status).toBe('fail');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('the session at the broker', () => {
  const session = (acr: string | null): SessionRecord => ({
    kind: 'oidc',
    issuer: 'https://idp',
    clientId: 'jitctl',
    bearer: new Secret('x'),
    refreshToken: null,
    expiresAt: 0,
    identity: { iss: 'https://idp', sub: 'alice', name: 'alice', email: null, groups: [] },
    acr,
    authTime: null,
  });
  const me = (groups: string[]): MeResponse => ({
    iss: 'https://idp',
    sub: 'alice',
    name: 'Alice',
    email: null,
    groups,
    requestable: groups.length ? ['prod-deploy'] : [],
    reviewable: [],
    auditor: false,
  });
  const role = (over: Partial<RoleSummary>): RoleSummary => ({
    name: 'prod-deploy',
    description: null,
    default_duration: '15m',
    max_duration: '1h',
    pending_ttl: '1h',
    approvals: 1,
    denials: 1,
    require_reason: false,
    step_up: null,
    requesters: ['group:developers'],
    approvers: ['group:leads'],
    audience: 'a',
    env: [],
    can_request: false,
    can_review: false,
    ...over,
  });

  it('warns when the token carries no groups while roles match on groups (the usual missing scope)', () => {
    const checks = viewCheck(session('pwd'), me([]), [
      role({}),
      role({ name: 'db', requesters: ['user:bob'], approvers: ['user:lee'] }),
    ]);
    const groups = checks.find((c) => c.name === 'groups');
    expect(groups).toMatchObject({
      status: 'warn',
      message: 'your token carries no groups, but 1 role (prod-deploy) match on groups',
    });
    expect(groups?.fix).toContain('groups_claim');
    expect(checks[0]).toMatchObject({ name: 'access', status: 'ok' });
    expect(checks[0]!.message).toContain('groups: none');
  });

  it('no warning when groups arrive, or when no role matches on groups', () => {
    expect(viewCheck(session('mfa'), me(['developers']), [role({})]).map((c) => c.name)).toEqual([
      'access',
    ]);
    expect(
      viewCheck(session('pwd'), me([]), [
        role({ requesters: ['user:alice'], approvers: ['user:lee'] }),
      ]).map((c) => c.name),
    ).toEqual(['access']);
  });

  it('says which requestable roles will ask for a stronger sign-in', () => {
    const checks = viewCheck(session('pwd'), me(['developers']), [
      role({ can_request: true, step_up: { acr: 'mfa', max_age: '5m' } }),
    ]);
    expect(checks.find((c) => c.name === 'step-up')?.message).toBe(
      'your sign-in is pwd; prod-deploy needs mfa within 5m (jitctl asks when needed)',
    );
  });

  it('credentials: active ones with their time left; only expired ones is a warning', () => {
    const now = Date.parse('2030-01-01T12:00:00Z');
    const rec = (role: string, minutes: number) => ({
      role,
      requestId: 'req_x',
      token: new Secret('t'),
      expiresAt: new Date(now + minutes * 60_000).toISOString(),
      env: {},
    });
    expect(credentialsCheck([], now)).toMatchObject({ status: 'ok', message: 'none stored' });
    expect(credentialsCheck([rec('a', 10), rec('b', -5)], now).message).toMatch(
      /^1 active: a until \d\d:\d\d \(10m\); 1 expired$/,
    );
    expect(credentialsCheck([rec('b', -5)], now).status).toBe('warn');
  });
});

describe('kubectl', () => {
  const kubeconfig = (exec: Record<string, unknown> | string) => {
    const dir = join(root, `kube-${++n}`);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'config');
    writeFileSync(
      file,
      typeof exec === 'string'
        ? exec
        : `apiVersion: v1\nkind: Config\nusers:\n  - name: prod\n    user:\n      exec: ${JSON.stringify(exec)}\n`,
    );
    return { dir, file };
  };
  const bin = (() => {
    const dir = join(root, 'bin');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'jitctl'), '#!/bin/sh\n');
    chmodSync(join(dir, 'jitctl'), 0o755);
    return dir;
  })();
  const exec = {
    apiVersion: 'client.authentication.k8s.io/v1',
    command: 'jitctl',
    args: ['credential', 'prod-deploy', '--kube'],
  };

  it('finds jitctl on PATH, and warns when the role has no active credential', async () => {
    const { file } = kubeconfig(exec);
    const ok = await kubectlChecks({ env: { KUBECONFIG: file, PATH: bin } }, () => true);
    expect(ok).toEqual([
      {
        name: 'kubectl',
        status: 'ok',
        message: `user prod in ${file} calls ${join(bin, 'jitctl')} for prod-deploy`,
      },
    ]);
    const none = await kubectlChecks({ env: { KUBECONFIG: file, PATH: bin } }, () => false);
    expect(none[0]).toMatchObject({
      status: 'warn',
      fix: 'kubectl fails until you run: jitctl request prod-deploy',
    });
  });

  it('fails when kubectl would not find jitctl, or asks for an ExecCredential version jitctl does not answer', async () => {
    const { file } = kubeconfig(exec);
    const missing = await kubectlChecks(
      { env: { KUBECONFIG: file, PATH: '/nonexistent' } },
      () => true,
    );
    expect(missing[0]).toMatchObject({
      status: 'fail',
      message: `user prod in ${file} runs jitctl, which is not on PATH`,
    });
    const old = kubeconfig({ ...exec, apiVersion: 'client.authentication.k8s.io/v1alpha1' });
    expect(
      (await kubectlChecks({ env: { KUBECONFIG: old.file, PATH: bin } }, () => true))[0]?.status,
    ).toBe('fail');
  });

  it('resolves a relative command against the kubeconfig’s directory, as kubectl does', async () => {
    const { dir, file } = kubeconfig({ ...exec, command: './tools/jitctl' });
    mkdirSync(join(dir, 'tools'));
    writeFileSync(join(dir, 'tools', 'jitctl'), '#!/bin/sh\n');
    chmodSync(join(dir, 'tools', 'jitctl'), 0o755);
    expect(
      (await kubectlChecks({ env: { KUBECONFIG: file, PATH: '' } }, () => true))[0]?.status,
    ).toBe('ok');
  });

  it('no kubeconfig, none that calls jitctl, a broken one', async () => {
    const none = await kubectlChecks(
      { env: { KUBECONFIG: join(root, 'nope'), PATH: bin } },
      () => true,
    );
    expect(none[0]).toMatchObject({ status: 'ok' });
    const other = kubeconfig({ ...exec, command: 'aws', args: ['eks', 'get-token'] });
    expect(
      (await kubectlChecks({ env: { KUBECONFIG: other.file } }, () => true))[0]?.message,
    ).toContain('calls jitctl');
    const broken = kubeconfig('users: [oops');
    const checks = await kubectlChecks({ env: { KUBECONFIG: broken.file } }, () => true);
    expect(checks).toEqual([
      {
        name: 'kubectl',
        status: 'fail',
        message: `${broken.file} is not valid YAML`,
        fix: 'fix the file; kubectl cannot read it either',
      },
    ]);
  });

  it('reads every file of a KUBECONFIG list', async () => {
    const a = kubeconfig({ ...exec, command: 'aws' });
    const b = kubeconfig(exec);
    const checks = await kubectlChecks(
      { env: { KUBECONFIG: `${a.file}:${b.file}`, PATH: bin } },
      () => true,
    );
    expect(checks.map((c) => c.message)).toEqual([
      `user prod in ${b.file} calls ${join(bin, 'jitctl')} for prod-deploy`,
    ]);
  });
});
