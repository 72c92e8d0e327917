import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { openStore } from '../../src/credentials/index.js';
import { credentialKey, decodeCredential } from '../../src/credentials/records.js';
import { people } from '../server/helpers.js';
import { startTestBroker, storeSession, type TestBroker } from '../support/broker.js';
import { BIN, runCli, type TestHome, testHome } from '../support/cli.js';

/**
 * kubectl with jitctl as its exec credential plugin (kubeconfig `users[].user.exec`, the built
 * jitctl run by node), against a small HTTPS API endpoint that checks the bearer token the way an
 * API server with structured authentication does: signature from the broker's JWKS, issuer,
 * audience and type. A self-signed certificate for 127.0.0.1 is made with openssl for each run.
 * kubectl must be installed: without it these tests fail and say so, they do not skip.
 */

const run = promisify(execFile);
/** The first kubectl on PATH (the Kubernetes project's package, or Debian's kubernetes-client). */
const KUBECTL = (process.env.PATH ?? '/usr/bin:/bin')
  .split(':')
  .map((d) => join(d, 'kubectl'))
  .find((p) => existsSync(p));
const CLUSTER_AUDIENCE = 'https://k8s.test.example.com';

const POLICY = `
roles:
  kube-admin:
    description: Administer the test cluster
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    default_duration: 10m
    max_duration: 1h
    credential:
      audience: ${CLUSTER_AUDIENCE}
      env: { KUBE_TOKEN: "{{token}}" }
  other-cluster:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    default_duration: 10m
    max_duration: 1h
    credential:
      audience: https://k8s.elsewhere.example.com
`;

let broker: TestBroker;
let api: Server;
let apiUrl: string;
let caPem: string;
/** kubectl's minor version, read before the tests are collected (v1 needs 1.22); 0 when absent. */
const kubectlMinor = KUBECTL
  ? Number.parseInt(
      (
        JSON.parse(
          execFileSync(KUBECTL, ['version', '--client', '-o', 'json'], { encoding: 'utf8' }),
        ) as {
          clientVersion: { minor: string };
        }
      ).clientVersion.minor,
      10,
    )
  : 0;
/** The newest exec credential version this kubectl speaks. */
const API_VERSION = kubectlMinor >= 22 ? 'v1' : 'v1beta1';
const dir = mkdtempSync(join(tmpdir(), 'jitctl-kubectl-'));
const homes: TestHome[] = [];
/** Bearer tokens the API endpoint accepted, and the reasons it refused others. */
const accepted: string[] = [];
const refusals: string[] = [];

/** A self-signed certificate for 127.0.0.1 (the CA kubectl trusts is the certificate itself). */
function makeCertificate(): { key: string; cert: string } {
  const key = join(dir, 'api.key');
  const cert = join(dir, 'api.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
    ],
    { stdio: 'pipe' },
  );
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

/** `GET /api` for callers whose token the broker signed for this cluster; 401 Status otherwise. */
async function startApiServer(): Promise<void> {
  const { key, cert } = makeCertificate();
  caPem = cert;
  const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
  api = createServer({ key, cert }, (req, res) => {
    void (async () => {
      const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      try {
        if (!m) throw new Error('no bearer token');
        await jwtVerify(m[1]!, jwks, {
          issuer: broker.broker.publicUrl,
          audience: CLUSTER_AUDIENCE,
          typ: 'jitctl-credential+jwt',
          algorithms: ['ES256', 'EdDSA'],
        });
        accepted.push(m[1]!);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            kind: 'APIVersions',
            versions: ['v1'],
            serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }],
          }),
        );
      } catch (err) {
        refusals.push((err as Error).message);
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: 'Unauthorized',
            reason: 'Unauthorized',
            code: 401,
          }),
        );
      }
    })();
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  apiUrl = `https://127.0.0.1:${(api.address() as AddressInfo).port}`;
}

/** alice's home: encrypted file store, signed in to the broker (a session from the test issuer). */
async function aliceHome(): Promise<TestHome> {
  const home = testHome({
    JITCTL_SERVER: broker.url,
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: 'alice kubectl passphrase',
  });
  homes.push(home);
  await storeSession(
    await openStore(createContext({ io: testIO(), env: home.env }), 'file'),
    broker,
    people.alice,
  );
  return home;
}

/**
 * Writes `file`: a kubeconfig for the test API server whose one user, `user`, gets its token
 * from an exec plugin; `exec` are the plugin's keys besides apiVersion and interactiveMode.
 */
function writeKubeconfig(
  file: string,
  user: string,
  apiVersion: 'v1' | 'v1beta1',
  exec: string[],
): string {
  const keys = apiVersion === 'v1' ? [...exec, 'interactiveMode: Never'] : exec;
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster:
      server: ${apiUrl}
      certificate-authority-data: ${Buffer.from(caPem).toString('base64')}
users:
  - name: ${user}
    user:
      exec:
        apiVersion: client.authentication.k8s.io/${apiVersion}
${keys.map((line) => `        ${line}\n`).join('')}contexts:
  - name: test
    context: { cluster: test, user: ${user} }
current-context: test
`,
  );
  return file;
}

/** A kubeconfig whose user runs the built jitctl through node as its exec plugin. */
function kubeconfig(home: TestHome, role: string, apiVersion: 'v1' | 'v1beta1' = API_VERSION) {
  const json = (v: unknown) => JSON.stringify(v);
  return writeKubeconfig(join(home.dir, `kubeconfig-${role}-${apiVersion}`), role, apiVersion, [
    `command: ${json(process.execPath)}`,
    `args: [${json(BIN)}, credential, ${role}, --kube]`,
    ...(apiVersion === 'v1' ? ['provideClusterInfo: false'] : []),
  ]);
}

async function kubectl(home: TestHome, config: string, args: string[]) {
  try {
    const r = await run(KUBECTL!, ['--kubeconfig', config, ...args], {
      env: home.env,
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    };
  }
}

beforeAll(async () => {
  if (!KUBECTL) {
    throw new Error(
      'kubectl is not installed (not on PATH): these tests run the real kubectl; scripts/install-system-deps.sh installs it',
    );
  }
  broker = await startTestBroker({ policy: POLICY });
  await startApiServer();
}, 60_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (api ? api.close(() => resolve()) : resolve()));
  await broker?.close();
  for (const h of homes) h.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('kubectl with jitctl as its exec credential plugin', () => {
  it.runIf(kubectlMinor === 0 || kubectlMinor >= 22)(
    'client.authentication.k8s.io/v1 (kubectl ≥ 1.22): get --raw /api succeeds with an approved credential',
    async () => {
      const home = await aliceHome();
      const request = await runCli(['request', 'kube-admin', '--for', '10m'], { env: home.env });
      expect(request.code, request.stderr).toBe(0);
      const r = await kubectl(home, kubeconfig(home, 'kube-admin', 'v1'), ['get', '--raw', '/api']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
      const store = await openStore(createContext({ io: testIO(), env: home.env }), 'file');
      const kept = decodeCredential(await store.get(credentialKey(broker.url, 'kube-admin')));
      expect(accepted).toContain(kept!.token.reveal());
      // kubectl shows nothing of the token.
      expect(r.stdout + r.stderr).not.toContain(kept!.token.reveal());
    },
  );

  it('client.authentication.k8s.io/v1beta1: kubectl asks for it in KUBERNETES_EXEC_INFO and gets it', async () => {
    const home = await aliceHome();
    const request = await runCli(['request', 'kube-admin'], { env: home.env });
    expect(request.code, request.stderr).toBe(0);
    const r = await kubectl(home, kubeconfig(home, 'kube-admin', 'v1beta1'), [
      'get',
      '--raw',
      '/api',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).kind).toBe('APIVersions');
    // What jitctl answers for that ask, as kubectl reads it.
    const direct = await runCli(['credential', 'kube-admin', '--kube'], {
      env: {
        ...home.env,
        KUBERNETES_EXEC_INFO: JSON.stringify({
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          kind: 'ExecCredential',
          spec: { interactive: false },
        }),
      },
    });
    expect(direct.code, direct.stderr).toBe(0);
    const cred = JSON.parse(direct.stdout) as {
      apiVersion: string;
      status: { expirationTimestamp: string };
    };
    expect(cred.apiVersion).toBe('client.authentication.k8s.io/v1beta1');
    expect(cred.status.expirationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('inside `jitctl exec`: kubectl reads KUBE_TOKEN through a shell-builtin plugin (docs/kubectl.md)', async () => {
    const home = await aliceHome();
    expect((await runCli(['request', 'kube-admin'], { env: home.env })).code).toBe(0);
    const credential = JSON.stringify({
      apiVersion: `client.authentication.k8s.io/${API_VERSION}`,
      kind: 'ExecCredential',
      status: { token: '%s' },
    }).replace(/"/g, '\\"');
    const file = writeKubeconfig(
      join(home.dir, 'kubeconfig-env'),
      'from-jitctl-exec',
      API_VERSION,
      ['command: sh', `args: [-c, 'printf "${credential}" "$KUBE_TOKEN"']`],
    );
    const r = await runCli(
      ['exec', 'kube-admin', '--', KUBECTL!, '--kubeconfig', file, 'get', '--raw', '/api'],
      {
        env: home.env,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).kind).toBe('APIVersions');
    // Outside jitctl exec there is no KUBE_TOKEN: kubectl refuses the plugin's empty token
    // itself, and the API server never sees a call.
    const refusedBefore = refusals.length;
    const outside = await kubectl(home, file, ['get', '--raw', '/api']);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain("exec plugin didn't return a token");
    expect(refusals.length).toBe(refusedBefore);
  });

  it('without a credential kubectl fails and shows jitctl’s message', async () => {
    const home = await aliceHome();
    const refusedBefore = refusals.length;
    const r = await kubectl(home, kubeconfig(home, 'kube-admin'), ['get', '--raw', '/api']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('error: no active credential for kube-admin');
    expect(r.stderr).toContain('jitctl request kube-admin');
    expect(r.stderr).toMatch(/(exit code|exit status) 3/);
    // The plugin failed, so kubectl never called the API.
    expect(refusals.length).toBe(refusedBefore);
  });

  it('a credential for another cluster is refused by the API server (its audience), and kubectl says Unauthorized', async () => {
    const home = await aliceHome();
    expect((await runCli(['request', 'other-cluster'], { env: home.env })).code).toBe(0);
    const refusedBefore = refusals.length;
    const r = await kubectl(home, kubeconfig(home, 'other-cluster'), ['get', '--raw', '/api']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unauthorized|must be logged in/);
    expect(refusals.slice(refusedBefore).some((m) => m.includes('"aud"'))).toBe(true);
  });
});
