import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigInput, loadServerConfig } from '../../src/server/config.js';

/** The broker's settings: precedence, defaults, paths, and an error naming the key for each bad value. */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REQUIRED = {
  policy: 'policy.yaml',
  oidc_issuer: 'https://idp.example.com/',
  oidc_client_id: 'jitctl',
};

const load = (input: Partial<ConfigInput>) =>
  loadServerConfig({ flags: {}, env: {}, cwd: dir, ...input });

function configFile(name: string, text: string): string {
  const file = join(dir, name);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
  return file;
}

describe('server config', () => {
  it('has the documented defaults', async () => {
    const c = await load({ flags: REQUIRED });
    expect(c).toMatchObject({
      listen: { host: '127.0.0.1', port: 8787 },
      db: `sqlite:${join(dir, 'jitctl.db')}`,
      policy: join(dir, 'policy.yaml'),
      oidcIssuer: 'https://idp.example.com/',
      oidcClientId: 'jitctl',
      oidcAudience: undefined,
      oidcScopes: ['openid', 'profile', 'email', 'offline_access'],
      groupsClaim: 'groups',
      acrLevels: ['pwd', 'mfa'],
      reviewStepUp: { acr: 'mfa', maxAgeMs: 300_000 },
      auditors: ['auditors'],
      admins: [],
      publicUrl: undefined,
      signingKey: 'db',
      signingAlg: 'ES256',
      logLevel: 'info',
      trustProxy: false,
      dev: false,
    });
  });

  it('takes flags over variables over the file over defaults', async () => {
    const file = configFile(
      'p/jitctl.yaml',
      'listen: 0.0.0.0:9000\ndb: sqlite:data/broker.db\nadmins: [root]\nlog_level: debug\npolicy: ../policy.yaml\n',
    );
    const c = await load({
      flags: {
        listen: '127.0.0.1:7000',
        oidc_issuer: 'https://a.example.com',
        oidc_client_id: 'x',
      },
      configFile: file,
      env: { JITCTL_SERVER_LISTEN: '127.0.0.1:8000', JITCTL_SERVER_LOG_LEVEL: 'warn' },
    });
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(c.logLevel).toBe('warn');
    expect(c.admins).toEqual(['root']);
    // Paths in the file are relative to the file.
    expect(c.db).toBe(`sqlite:${join(dir, 'p', 'data', 'broker.db')}`);
    expect(c.policy).toBe(join(dir, 'policy.yaml'));
  });

  it('reads the file named by JITCTL_SERVER_CONFIG, in YAML or JSON', async () => {
    const file = configFile(
      'j.json',
      JSON.stringify({ ...REQUIRED, auditors: ['sec', 'audit'], trust_proxy: 1 }),
    );
    const c = await load({ env: { JITCTL_SERVER_CONFIG: file } });
    expect(c.auditors).toEqual(['sec', 'audit']);
    expect(c.trustProxy).toBe(1);
  });

  it('parses lists, step-up and proxies from variables', async () => {
    const c = await load({
      flags: REQUIRED,
      env: {
        JITCTL_SERVER_ACR_LEVELS: 'pwd, otp mfa',
        JITCTL_SERVER_REVIEW_STEP_UP: '{"acr":"otp","max_age":"10m"}',
        JITCTL_SERVER_TRUST_PROXY: '10.0.0.0/8,127.0.0.1',
        JITCTL_SERVER_OIDC_SCOPES: 'openid groups',
        JITCTL_SERVER_PUBLIC_URL: 'https://jit.example.com/',
        JITCTL_SERVER_SIGNING_ALG: 'EdDSA',
      },
    });
    expect(c.acrLevels).toEqual(['pwd', 'otp', 'mfa']);
    expect(c.reviewStepUp).toEqual({ acr: 'otp', maxAgeMs: 600_000 });
    expect(c.trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(c.oidcScopes).toEqual(['openid', 'groups']);
    expect(c.publicUrl).toBe('https://jit.example.com');
    expect(c.signingAlg).toBe('EdDSA');
    const none = await load({ flags: REQUIRED, env: { JITCTL_SERVER_REVIEW_STEP_UP: 'none' } });
    expect(none.reviewStepUp).toBeNull();
  });

  it('accepts IPv6 listen addresses', async () => {
    const c = await load({ flags: { ...REQUIRED, listen: '[::1]:8787' } });
    expect(c.listen).toEqual({ host: '::1', port: 8787 });
  });

  it('puts --dev data in its data directory and needs no identity provider settings', async () => {
    const c = await load({ flags: { dev: true, data_dir: 'devdata' } });
    expect(c.db).toBe(`sqlite:${join(dir, 'devdata', 'jitctl.db')}`);
    expect(c.logLevel).toBe('warn');
    await expect(
      load({ flags: { dev: true, oidc_issuer: 'https://x.example.com' } }),
    ).rejects.toThrow(/--dev uses its built-in identity provider/);
  });

  const bad: [string, Partial<ConfigInput>, RegExp][] = [
    ['missing settings', {}, /needs policy .*oidc_issuer .*oidc_client_id/],
    ['bad listen', { flags: { ...REQUIRED, listen: '8787' } }, /--listen: "8787" is not HOST:PORT/],
    [
      'bad log level',
      { flags: REQUIRED, env: { JITCTL_SERVER_LOG_LEVEL: 'loud' } },
      /JITCTL_SERVER_LOG_LEVEL: must be one of fatal/,
    ],
    [
      'bad alg',
      { flags: REQUIRED, env: { JITCTL_SERVER_SIGNING_ALG: 'HS256' } },
      /must be one of ES256, EdDSA/,
    ],
    [
      'unknown variable',
      { flags: REQUIRED, env: { JITCTL_SERVER_AUDITOR: 'x' } },
      /unknown environment variable JITCTL_SERVER_AUDITOR/,
    ],
    [
      'http issuer',
      { flags: { ...REQUIRED, oidc_issuer: 'http://idp.example.com' } },
      /must use https/,
    ],
    [
      'http issuer on a domain that starts with 127.',
      { flags: { ...REQUIRED, oidc_issuer: 'http://127.evil.example' } },
      /must use https/,
    ],
    [
      'step-up acr not ranked',
      { flags: REQUIRED, env: { JITCTL_SERVER_REVIEW_STEP_UP: '{"acr":"hwk","max_age":"5m"}' } },
      /not in acr_levels/,
    ],
    [
      'step-up extra key',
      {
        flags: REQUIRED,
        env: { JITCTL_SERVER_REVIEW_STEP_UP: '{"acr":"mfa","max_age":"5m","x":1}' },
      },
      /unknown key "x"/,
    ],
    [
      'bad trust proxy',
      { flags: REQUIRED, env: { JITCTL_SERVER_TRUST_PROXY: 'everyone' } },
      /not an IP address/,
    ],
    [
      'issuer is the broker',
      {
        flags: { ...REQUIRED, oidc_issuer: 'https://jit.example.com' },
        env: { JITCTL_SERVER_PUBLIC_URL: 'https://jit.example.com' },
      },
      /must not be the broker itself/,
    ],
  ];

  it.each(bad)('refuses %s, naming the key', async (_name, input, message) => {
    const err = await load(input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a file with unknown keys, bad YAML or a non-mapping', async () => {
    const typo = configFile('typo.yaml', 'oidc_isuer: https://x.example.com\n');
    await expect(load({ configFile: typo })).rejects.toThrow(/unknown setting "oidc_isuer"/);
    const broken = configFile('broken.yaml', 'listen: [\n');
    await expect(load({ configFile: broken })).rejects.toThrow(ConfigError);
    const list = configFile('list.yaml', '- listen\n');
    await expect(load({ configFile: list })).rejects.toThrow(/must hold a mapping/);
    const dup = configFile('dup.yaml', 'admins: [a]\nadmins: [b]\n');
    await expect(load({ configFile: dup })).rejects.toThrow(ConfigError);
  });
});

describe('rate_limits', () => {
  it('defaults to the documented limits and takes a partial mapping from the file', async () => {
    const c = await load({ flags: REQUIRED });
    expect(c.rateLimits).toEqual({
      reads: { max: 600, windowMs: 60_000 },
      writes: { max: 60, windowMs: 60_000 },
      token: { max: 300, windowMs: 60_000 },
      public: { max: 600, windowMs: 60_000 },
      auth_failures: { max: 100, windowMs: 300_000 },
      grant_checks: { max: 1200, windowMs: 60_000 },
      resource_servers: { max: 6000, windowMs: 60_000 },
    });
    const file = configFile(
      'limits.yaml',
      'rate_limits:\n  writes: 20/30s\n  token: { max: 1000, window: 1m }\n  public: off\n',
    );
    const f = await load({ flags: REQUIRED, configFile: file });
    expect(f.rateLimits).toMatchObject({
      writes: { max: 20, windowMs: 30_000 },
      token: { max: 1000, windowMs: 60_000 },
      public: null,
      reads: { max: 600, windowMs: 60_000 },
    });
  });

  it('takes JSON or off from the environment', async () => {
    const json = await load({
      flags: REQUIRED,
      env: { JITCTL_SERVER_RATE_LIMITS: '{"auth_failures":"10/1h"}' },
    });
    expect(json.rateLimits.auth_failures).toEqual({ max: 10, windowMs: 3_600_000 });
    const off = await load({ flags: REQUIRED, env: { JITCTL_SERVER_RATE_LIMITS: 'off' } });
    expect(Object.values(off.rateLimits)).toEqual([null, null, null, null, null, null, null]);
  });

  const bad: [string, string, RegExp][] = [
    ['a typo in a class', '{"write":"5/1m"}', /unknown limit "write".*did you mean `writes`/s],
    ['no window', '{"writes":"5"}', /JITCTL_SERVER_RATE_LIMITS\.writes: "5" is not a limit/],
    ['a zero count', '{"writes":"0/1m"}', /count must be a whole number from 1/],
    ['a bad window', '{"writes":"5/soon"}', /writes: the window "soon" is not a duration/],
    ['a window over a day', '{"writes":"5/2d"}', /outside 1s…1d/],
    ['not a mapping', '[1]', /must be a mapping of limits/],
    ['unknown object key', '{"writes":{"max":5,"per":"1m"}}', /unknown key "per"/],
  ];
  it.each(bad)('refuses %s, naming the setting', async (_name, value, message) => {
    const err = await load({ flags: REQUIRED, env: { JITCTL_SERVER_RATE_LIMITS: value } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(`${(err as ConfigError).message} ${(err as ConfigError).hint ?? ''}`).toMatch(message);
  });
});

describe('resource_servers', () => {
  const HASH = 'a'.repeat(64);
  it('reads client secrets (as SHA-256) and trusted-issuer entries, none by default', async () => {
    expect((await load({ flags: REQUIRED })).resourceServers).toEqual([]);
    const file = configFile(
      'rs.yaml',
      [
        'trusted_issuers:',
        '  - name: k8s',
        '    issuer: https://k8s.example.com',
        '    audience: https://jit.example.com',
        '    conditions: { namespace: vault }',
        'resource_servers:',
        `  - { client_id: k8s-prod, client_secret_sha256: ${HASH}, audiences: [https://k8s.example.com] }`,
        '  - { client_id: vault, trusted_issuer: k8s, subject: "system:serviceaccount:vault:vault" }',
        '',
      ].join('\n'),
    );
    const c = await load({ flags: REQUIRED, configFile: file });
    expect(c.resourceServers).toEqual([
      {
        clientId: 'k8s-prod',
        secretSha256: Buffer.from(HASH, 'hex'),
        trustedIssuer: undefined,
        subject: undefined,
        audiences: ['https://k8s.example.com'],
      },
      {
        clientId: 'vault',
        secretSha256: undefined,
        trustedIssuer: 'k8s',
        subject: 'system:serviceaccount:vault:vault',
        audiences: undefined,
      },
    ]);
  });

  const bad: [string, string, RegExp][] = [
    ['not a list', '{"client_id":"x"}', /must be a list of resource servers/],
    [
      'a secret in clear',
      '[{"client_id":"x","client_secret_sha256":"hunter2"}]',
      /64 hex digits \(never the secret itself\)/,
    ],
    [
      'both ways to sign in',
      `[{"client_id":"x","client_secret_sha256":"${HASH}","trusted_issuer":"k8s"}]`,
      /exactly one of/,
    ],
    ['neither', '[{"client_id":"x"}]', /exactly one of/],
    [
      'a typo',
      `[{"client_id":"x","client_secret_sha265":"${HASH}"}]`,
      /RESOURCE_SERVERS\[0\]\.client_secret_sha265: unknown key.*did you mean `client_secret_sha256`/s,
    ],
    [
      'a duplicate',
      `[{"client_id":"x","client_secret_sha256":"${HASH}"},{"client_id":"x","client_secret_sha256":"${HASH}"}]`,
      /x is listed twice/,
    ],
    [
      'an unknown trusted issuer',
      '[{"client_id":"x","trusted_issuer":"nope"}]',
      /trusted_issuer "nope" is not the name of a trusted_issuers entry/,
    ],
    [
      'a subject without an issuer',
      `[{"client_id":"x","client_secret_sha256":"${HASH}","subject":"s"}]`,
      /subject: goes with trusted_issuer/,
    ],
  ];
  it.each(bad)('refuses %s, naming the setting', async (_name, value, message) => {
    const err = await load({
      flags: REQUIRED,
      env: { JITCTL_SERVER_RESOURCE_SERVERS: value },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(`${(err as ConfigError).message} ${(err as ConfigError).hint ?? ''}`).toMatch(message);
  });
});

describe('resource_servers in docs/operations.md', () => {
  it('parses as it is written', async () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/operations.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Resource servers'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const file = configFile(
      'rs-doc.yaml',
      [
        'trusted_issuers:',
        '  - name: k8s-prod',
        '    issuer: https://k8s.example.com',
        '    audience: https://jit.example.com',
        '    conditions: { namespace: vault }',
        yaml,
      ].join('\n'),
    );
    const c = await load({ flags: REQUIRED, configFile: file });
    expect(c.resourceServers.map((r) => r.clientId)).toEqual(['k8s-prod-gateway', 'vault']);
    expect(c.resourceServers[0]!.audiences).toEqual(['https://k8s.prod.example.com']);
  });
});
