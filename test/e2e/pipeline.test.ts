import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/api/secret.js';
import { StoredSession } from '../../src/auth/stored-session.js';
import { createContext } from '../../src/cli/context.js';
import { AuthError } from '../../src/cli/errors.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { memoryStore } from '../../src/credentials/memory-store.js';
import { decodeSession, encodeSession, sessionKey } from '../../src/credentials/records.js';
import { type CliResult, runCli, spawnCli, type TestHome, testHome } from '../support/cli.js';
import { startTestIssuer, type TestIssuer } from '../support/test-issuer.js';
import {
  atPty,
  type DevBroker,
  expectNoRawControls,
  SCRIPT,
  signIn,
  startDevBroker,
  type User,
  user,
} from './support.js';

/**
 * A pipeline's federated login end to end, every part a real process: `jitctl server --dev`
 * trusting a CI platform (a test issuer with its own JWKS on 127.0.0.1), the pipeline's
 * `jitctl login --federated-token -` with the platform's token on stdin, `jitctl request
 * prod-deploy --for 10m --wait` while lee (a person of the development identity provider, signed
 * in through its pages) approves with `jitctl approve`, then `jitctl exec prod-deploy -- …`, all
 * under CI=true. Then CI mode at a real pseudo-terminal: nothing asks, nothing spins.
 */

const AUD = 'https://jit.example.com';
const POLICY = `
roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers, group:ci-deployers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}" }
`;

let ci: TestIssuer;
let broker: DevBroker;
let lee: User;
const homes: TestHome[] = [];
const outputs: string[] = [];
const secrets: string[] = [];

/** The token GitHub Actions gives a deployment job of acme/app on main. */
const githubToken = (over: Record<string, unknown> = {}) =>
  ci.token(
    { sub: 'repo:acme/app:environment:production', acr: null, auth_time: null },
    {
      aud: AUD,
      extra: {
        repository: 'acme/app',
        ref: 'refs/heads/main',
        environment: 'production',
        job_workflow_ref: 'acme/app/.github/workflows/deploy.yml@refs/heads/main',
        ...over,
      },
    },
  );

/** A runner: CI=true, the encrypted file store with its passphrase from a "CI secret". */
function runner(extra: Record<string, string> = {}) {
  const home = testHome({
    CI: 'true',
    JITCTL_SERVER: broker.url,
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: 'from the CI secret store',
    ...extra,
  });
  homes.push(home);
  const run = async (args: string[], input?: string): Promise<CliResult> => {
    const r = await runCli(args, {
      env: home.env,
      timeoutMs: 60_000,
      ...(input !== undefined ? { input } : {}),
    });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  return { home, run };
}

beforeAll(async () => {
  ci = await startTestIssuer({ clientId: 'github' });
  broker = await startDevBroker({
    policy: POLICY,
    env: {
      JITCTL_SERVER_TRUSTED_ISSUERS: JSON.stringify([
        {
          name: 'github-deploy',
          issuer: ci.issuer,
          audience: AUD,
          conditions: {
            repository: 'acme/app',
            ref: 'refs/heads/main',
            environment: 'production',
            job_workflow_ref: { pattern: 'acme/app/.github/workflows/deploy.yml@*' },
          },
          subject: 'github:{{repository}}:{{environment}}',
          groups: ['ci-deployers'],
          acr: 'mfa',
        },
      ]),
    },
  });
  lee = user('lee', broker);
  await signIn(lee, broker, true);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  lee?.home.cleanup();
  for (const h of homes) h.cleanup();
  await ci?.close();
});

describe('a GitHub Actions deployment job against jitctl server --dev', () => {
  it('logs in with the platform token on stdin, requests, waits for lee, and execs the deploy', async () => {
    const job = runner();
    const token = await githubToken();
    secrets.push(token);

    const login = await job.run(['login', '--federated-token', '-'], token);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toBe('');
    expect(login.stderr).toMatch(
      new RegExp(
        `^✔ Signed in to ${broker.url.replace(/[.]/g, '\\.')} as pipeline github-deploy \\(github:acme/app:production\\); groups: ci-deployers; session valid until \\d\\d:\\d\\d \\(15m, no refresh\\)\\n$`,
      ),
    );
    const store = await openStore(createContext({ io: testIO(), env: job.home.env }), 'file');
    const session = decodeSession(await store.get(sessionKey(broker.url)));
    expect(session?.kind).toBe('federated');
    expect(session?.refreshToken).toBeNull();
    secrets.push(session!.bearer.reveal());

    const status = await job.run(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      session: { kind: 'federated', refreshable: false },
    });

    const waiting = spawnCli(
      ['request', 'prod-deploy', '--for', '10m', '--reason', 'deploy abc123', '--wait'],
      { env: job.home.env },
    );
    const pattern = /waiting for approval of (req_[A-Za-z0-9]+)/;
    await waiting.waitForOutput(pattern, 30_000);
    const id = pattern.exec(waiting.stderr())![1]!;

    const show = await lee.run(['show', id, '--json']);
    expect(JSON.parse(show.stdout).requester).toEqual({
      iss: broker.url,
      sub: 'github:acme/app:production',
      name: 'github-deploy',
    });
    const approve = await lee.run(['approve', id, '--yes', '--comment', 'ship it']);
    expect(approve.code, approve.stderr).toBe(0);
    expect(approve.stderr).toMatch(/Requester\s+github-deploy \(github:acme\/app:production\)/);

    const requested = await waiting.done;
    outputs.push(requested.stdout, requested.stderr);
    expect(requested.code, requested.stderr).toBe(0);
    expect(requested.stderr).toMatch(
      /✔ approved by Lee Lead · credential valid until \d\d:\d\d \(10m\)/,
    );
    // CI: plain lines, no spinner frames, no colours, no cursor movement.
    expect(requested.stderr).not.toMatch(/[\u001b\r⠋⠙⠹⠸]/);

    const exec = await job.run([
      'exec',
      'prod-deploy',
      '--',
      'sh',
      '-c',
      'printf %s "$KUBE_TOKEN" > "$HOME/kube-token"; echo "deploying as $JITCTL_ROLE ($JITCTL_REQUEST_ID)"',
    ]);
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toBe(`deploying as prod-deploy (${id})\n`);
    const credential = readFileSync(join(job.home.dir, 'kube-token'), 'utf8');
    secrets.push(credential);
    const { payload } = await jwtVerify(
      credential,
      createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`)),
      {
        issuer: broker.url,
        audience: 'https://k8s.prod.example.com',
        typ: 'jitctl-credential+jwt',
      },
    );
    expect(payload).toMatchObject({
      sub: 'github:acme/app:production',
      sub_iss: broker.url,
      role: 'prod-deploy',
      request_id: id,
    });
    expect((payload.approvers as { sub: string }[]).length).toBe(1);

    const logout = await job.run(['logout']);
    expect(logout.code, logout.stderr).toBe(0);
    expect(await store.get(sessionKey(broker.url))).toBeUndefined();
  }, 120_000);

  it('refuses a token from another repository, and a token typed on the command line', async () => {
    const job = runner();
    const other = await githubToken({ repository: 'mallory/fork' });
    secrets.push(other);
    const r = await job.run(['login', '--federated-token', '-'], other);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      'error: the broker refused the federated token from stdin: condition `repository` not met (the token says "mallory/fork")',
    );
    expect(r.stderr).toContain('hint: check the token’s audience and the claims');
    const wrongAud = await job.run(
      ['login', '--federated-token', '-'],
      await ci.token({ sub: 'x' }, { aud: 'https://github.com/acme' }),
    );
    expect(wrongAud.code).toBe(4);
    expect(wrongAud.stderr).toContain('wrong audience: the token is for "https://github.com/acme"');
    expect(wrongAud.stderr).not.toContain(AUD);

    const argv = await job.run(['login', '--federated-token', other]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toContain(
      '--federated-token takes a file (or - for stdin), not the token itself',
    );
    const missing = await job.run(['login', '--federated-token', join(job.home.dir, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read it (ENOENT)');
  });

  it('JITCTL_FEDERATED_TOKEN signs in every command by itself: no login step, no store', async () => {
    const job = runner({ JITCTL_STORE: 'memory' });
    const token = await githubToken();
    secrets.push(token);
    const env: Record<string, string> = { ...job.home.env, JITCTL_FEDERATED_TOKEN: token };
    const login = await runCli(['login'], { env });
    outputs.push(login.stdout, login.stderr);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toContain(
      'nothing was stored: each command signs in with JITCTL_FEDERATED_TOKEN itself',
    );
    // The flag with the memory store is refused: the session would end with the command.
    const flag = await runCli(['login', '--federated-token', '-'], {
      env: job.home.env,
      input: token,
    });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('a session in the memory store ends with this command');

    const pending = await runCli(
      ['request', 'prod-deploy', '--reason', 'x', '--no-wait', '--json'],
      { env },
    );
    outputs.push(pending.stdout, pending.stderr);
    expect(pending.code, pending.stderr).toBe(0);
    const doc = JSON.parse(pending.stdout) as {
      request: { id: string; requester: { sub: string } };
    };
    expect(doc.request.requester.sub).toBe('github:acme/app:production');
    expect((await runCli(['cancel', doc.request.id], { env })).code).toBe(0);
    expect(existsSync(join(job.home.dir, 'data', 'jitctl', 'store'))).toBe(false);

    // `request` keeps the credential at the end, so a store it cannot use (the default keychain,
    // no D-Bus on this runner) fails before anything is filed, not after someone approved.
    const { JITCTL_STORE: _, ...noStore } = env;
    const early = await runCli(['request', 'prod-deploy', '--reason', 'no store here'], {
      env: noStore,
    });
    outputs.push(early.stdout, early.stderr);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('keychain');
    const listed = await lee.run(['list', '--json']);
    expect(listed.stdout).not.toContain('no store here');
  });
});

describe('federated sessions in the CLI', () => {
  const server = 'https://jit.example.test';

  it('an expired stored session is an AuthError telling to log in with a token again', async () => {
    const store = memoryStore();
    await store.set(
      sessionKey(server),
      encodeSession({
        kind: 'federated',
        issuer: server,
        clientId: 'github-deploy',
        bearer: new Secret('eyJ.session.sig'),
        refreshToken: null,
        expiresAt: Date.now() - 1000,
        identity: {
          iss: server,
          sub: 'github:acme/app:production',
          name: 'github-deploy',
          email: null,
          groups: [],
        },
        acr: 'mfa',
        authTime: null,
      }),
    );
    const ctx = createContext({ io: testIO(), env: {} });
    const s = new StoredSession(ctx, server, store);
    const err = await s.bearer().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).message).toBe(`the pipeline session with ${server} has expired`);
    expect((err as AuthError).hint).toContain('run `jitctl login --federated-token` again');
    expect((err as AuthError).exitCode).toBe(4);
    // Still valid but inside the refresh window: used as it is (there is nothing to refresh with).
    const live = memoryStore();
    const rec = decodeSession(await store.get(sessionKey(server)))!;
    await live.set(sessionKey(server), encodeSession({ ...rec, expiresAt: Date.now() + 30_000 }));
    expect((await new StoredSession(ctx, server, live).bearer()).reveal()).toBe('eyJ.session.sig');
    const stepUp = await new StoredSession(ctx, server, live)
      .stepUp({ acrValues: 'mfa' }, 'approving needs MFA')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((stepUp as AuthError).message).toContain(
      'this pipeline session cannot sign in interactively',
    );
  });

  it('with JITCTL_FEDERATED_TOKEN, the session is exchanged in memory and again when it runs out', async () => {
    const token = await githubToken();
    const store = memoryStore();
    let now = Date.now();
    const ctx = createContext({
      io: testIO(),
      env: { JITCTL_FEDERATED_TOKEN: token },
      clock: { now: () => now, sleep: async () => {} },
    });
    const s = new StoredSession(ctx, broker.url, store);
    const first = (await s.bearer()).reveal();
    expect(decodeJwt(first).sub).toBe('github:acme/app:production');
    expect(await s.bearer()).toBeInstanceOf(Secret);
    expect((await s.bearer()).reveal()).toBe(first);
    now += 15 * 60_000;
    const second = (await s.bearer()).reveal();
    expect(second).not.toBe(first);
    expect(decodeJwt(second).jti).not.toBe(decodeJwt(first).jti);
    // Never written to the store.
    expect(await store.list()).toEqual([]);
  });
});

/** `jitctl args…` at a pseudo-terminal, with CI=true and colours allowed. */
const atCiTerminal = (env: Record<string, string>, args: string[]) =>
  atPty({ ...env, CI: 'true' }, args);

describe('CI=true at a real terminal: nothing asks, nothing spins, exit codes tell', () => {
  it('request waits with plain lines; approve without --yes, the reason and the passphrase are not asked for', async () => {
    if (!existsSync(SCRIPT)) throw new Error('this test needs `script` (apt-get install bsdutils)');
    const job = runner();
    const token = await githubToken();
    secrets.push(token);
    expect((await job.run(['login', '--federated-token', '-'], token)).code).toBe(0);

    const noReason = atCiTerminal(job.home.env, ['request', 'prod-deploy']);
    expect(await noReason.done).toBe(2);
    expect(noReason.screen()).toContain('pass --reason');

    const waiting = atCiTerminal(job.home.env, [
      'request',
      'prod-deploy',
      '--reason',
      'tty',
      '--for',
      '5m',
    ]);
    await waiting.until(/waiting for approval of (req_[A-Za-z0-9]+)/);
    const id = /waiting for approval of (req_[A-Za-z0-9]+)/.exec(waiting.screen())![1]!;

    const ask = atCiTerminal(lee.env, ['approve', id]);
    expect(await ask.done).toBe(2);
    expect(ask.screen()).toContain(
      'Approving asks for confirmation, and CI=true means nothing is asked',
    );
    expect(ask.screen()).toContain('then pass --yes');

    const { JITCTL_FILE_PASSPHRASE: _, ...noPassphrase } = lee.env;
    const locked = atCiTerminal(noPassphrase, ['approve', id, '--yes']);
    expect(await locked.done).toBe(4);
    expect(locked.screen()).toContain('needs its passphrase, and CI=true means nothing is asked');

    const stdinTty = atCiTerminal(job.home.env, ['login', '--federated-token', '-']);
    expect(await stdinTty.done).toBe(2);
    expect(stdinTty.screen()).toContain('stdin is a terminal, not a token');

    expect((await lee.run(['approve', id, '--yes'])).code).toBe(0);
    expect(await waiting.done).toBe(0);
    const screen = waiting.screen();
    expect(screen).toMatch(/✔ approved by Lee Lead · credential valid until \d\d:\d\d \(5m\)/);
    // At a terminal but in CI: no colour, no spinner, no cursor control.
    expectNoRawControls(screen);
    expect(screen).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
  }, 120_000);
});

describe('secrets', () => {
  it('no CI token, session token or credential appears in any output', () => {
    expect(secrets.length).toBeGreaterThan(3);
    const all = [...outputs, ...lee.outputs].join('\n');
    for (const s of secrets) {
      expect(all).not.toContain(s);
      expect(all).not.toContain(s.split('.')[2]!);
    }
  });
});
