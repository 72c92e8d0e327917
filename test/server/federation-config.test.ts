import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigInput, loadServerConfig } from '../../src/server/config.js';
import { globToRegExp } from '../../src/server/federation/config.js';
import { conditionMismatch } from '../../src/server/federation/external-token.js';

/**
 * `trusted_issuers` as operators write it (YAML in the config file, JSON in a variable): the
 * parsed form, and for each mistake an error naming the entry and key, raised before the broker
 * opens its port.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-fedconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REQUIRED = {
  policy: 'policy.yaml',
  oidc_issuer: 'https://idp.example.com/',
  oidc_client_id: 'jitctl',
};
const GITHUB = 'https://token.actions.githubusercontent.com';

const load = (input: Partial<ConfigInput>) =>
  loadServerConfig({ flags: REQUIRED, env: {}, cwd: dir, ...input });

let n = 0;
function fromFile(yaml: string) {
  const file = join(dir, `c${n++}.yaml`);
  writeFileSync(file, yaml);
  return load({ configFile: file });
}

const fromEnv = (value: unknown, extra: Record<string, string> = {}) =>
  load({
    env: {
      JITCTL_SERVER_TRUSTED_ISSUERS: typeof value === 'string' ? value : JSON.stringify(value),
      ...extra,
    },
  });

const entry = (over: Record<string, unknown> = {}) => ({
  issuer: GITHUB,
  audience: 'https://jit.example.com',
  conditions: { repository: 'acme/app' },
  ...over,
});

async function refused(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('trusted_issuers: what is accepted', () => {
  it('reads a GitHub Actions and a GitLab entry from the config file', async () => {
    const c = await fromFile(`
trusted_issuers:
  - name: github-deploy
    issuer: ${GITHUB}
    audience: https://jit.example.com
    conditions:
      repository: acme/app
      ref: refs/heads/main
      environment: [production, production-eu]
      job_workflow_ref: { pattern: "acme/app/.github/workflows/deploy.yml@*" }
    subject: "github:{{repository}}:{{environment}}"
    groups: [ci-deployers]
    acr: mfa
    session_ttl: 30m
  - issuer: https://gitlab.example.com
    audience: https://jit.example.com
    algorithms: [RS256]
    jwks_uri: https://gitlab.example.com/oauth/discovery/keys
    conditions: { project_path: acme/app, ref_protected: true }
`);
    expect(c.trustedIssuers).toHaveLength(2);
    const [gh, gl] = c.trustedIssuers;
    expect(gh).toMatchObject({
      name: 'github-deploy',
      issuer: GITHUB,
      audience: 'https://jit.example.com',
      jwksUri: undefined,
      algorithms: ['RS256', 'ES256'],
      groups: ['ci-deployers'],
      acr: 'mfa',
      sessionTtlMs: 30 * 60_000,
      subject: [
        { text: 'github:' },
        { claim: 'repository' },
        { text: ':' },
        { claim: 'environment' },
      ],
    });
    expect(gh!.conditions.map((x) => x.claim)).toEqual([
      'repository',
      'ref',
      'environment',
      'job_workflow_ref',
    ]);
    expect(gl).toMatchObject({
      name: 'gitlab.example.com',
      algorithms: ['RS256'],
      jwksUri: 'https://gitlab.example.com/oauth/discovery/keys',
      subject: null,
      groups: [],
      acr: null,
      sessionTtlMs: 15 * 60_000,
    });
    // A YAML boolean compares with the string the platform sends ("true").
    expect(gl!.conditions[1]).toMatchObject({ claim: 'ref_protected', values: ['true'] });
  });

  it('reads JSON from JITCTL_SERVER_TRUSTED_ISSUERS, and defaults to none', async () => {
    expect((await load({})).trustedIssuers).toEqual([]);
    const c = await fromEnv([entry({ name: 'gh' })]);
    expect(c.trustedIssuers.map((t) => t.name)).toEqual(['gh']);
  });

  it('takes the example of docs/operations.md as it is written', async () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/operations.md'), 'utf8');
    const example = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .find((y) => y.includes('trusted_issuers:'));
    expect(example).toBeDefined();
    const c = await fromFile(example!);
    expect(c.trustedIssuers.map((t) => [t.name, t.conditions.length, t.acr])).toEqual([
      ['github-deploy', 4, 'mfa'],
      ['gitlab-deploy', 4, null],
    ]);
  });

  it('accepts plain http for loopback issuers only (tests and development)', async () => {
    const c = await fromEnv([entry({ issuer: 'http://127.0.0.1:5556' })]);
    expect(c.trustedIssuers[0]!.issuer).toBe('http://127.0.0.1:5556');
    const err = await refused(fromEnv([entry({ issuer: 'http://ci.example.com' })]));
    expect(err.message).toBe(
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].issuer: http://ci.example.com must be an https:// URL',
    );
    const lookalike = await refused(fromEnv([entry({ issuer: 'http://127.evil.example' })]));
    expect(lookalike.message).toBe(
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].issuer: http://127.evil.example must be an https:// URL',
    );
  });
});

describe('trusted_issuers: every mistake names the entry and key', () => {
  it.each([
    [
      'no conditions',
      [entry({ conditions: {} })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].conditions: must list at least one claim condition',
    ],
    [
      'conditions missing',
      [{ issuer: GITHUB, audience: 'x' }],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].conditions: must list at least one claim condition',
    ],
    [
      'no audience',
      [{ issuer: GITHUB, conditions: { repository: 'a/b' } }],
      "JITCTL_SERVER_TRUSTED_ISSUERS[0].audience: must be the audience the tokens must carry (usually the broker's public URL)",
    ],
    [
      'a symmetric algorithm',
      [entry({ algorithms: ['HS256'] })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].algorithms[0]: "HS256" is not accepted',
    ],
    [
      'alg none',
      [entry({ algorithms: ['RS256', 'none'] })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].algorithms[1]: "none" is not accepted',
    ],
    [
      'a condition on aud',
      [entry({ conditions: { aud: 'x' } })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].conditions.aud: `aud` is checked by the broker itself (issuer, audience, expiry); remove this condition',
    ],
    [
      'an empty list of values',
      [entry({ conditions: { ref: [] } })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].conditions.ref: the list of values is empty',
    ],
    [
      'an object that is not a pattern',
      [entry({ conditions: { ref: { glob: 'x' } } })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].conditions.ref: a condition object takes one key: pattern',
    ],
    [
      'a nested value',
      [entry({ conditions: { ref: [['a']] } })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].conditions.ref[0]: must be a string, a list of strings or {pattern: "glob"}, not ["a"]',
    ],
    [
      'a subject without a claim',
      [entry({ subject: 'ci-bot' })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].subject: uses no claim: every token would become the same workload',
    ],
    [
      'an unclosed placeholder',
      [entry({ subject: 'gh:{{repository' })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].subject: has a `{{` without `}}`',
    ],
    [
      'a group written as a principal',
      [entry({ groups: ['group:ci'] })],
      "JITCTL_SERVER_TRUSTED_ISSUERS[0].groups[0]: write the group's name alone: ci",
    ],
    [
      'a session_ttl over 12h',
      [entry({ session_ttl: '1d' })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].session_ttl: 1d is outside 1m…12h',
    ],
    [
      'a session_ttl that is not a duration',
      [entry({ session_ttl: '15x' })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].session_ttl:',
    ],
    [
      'a name with spaces',
      [entry({ name: 'git hub' })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[0].name: "git hub": use letters, digits, ".", "_" and "-" (at most 64)',
    ],
    [
      'two entries for one issuer without names',
      [entry(), entry({ conditions: { repository: 'acme/other' } })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[1].name: entries 0 and 1 are both named "token.actions.githubusercontent.com"',
    ],
    [
      'two entries for one issuer with different key sets',
      [entry({ name: 'a' }), entry({ name: 'b', jwks_uri: 'https://keys.example.com/jwks' })],
      'JITCTL_SERVER_TRUSTED_ISSUERS[1].jwks_uri: entries 0 and 1 both trust https://token.actions.githubusercontent.com but with different jwks_uri',
    ],
    ['not a list', { issuer: GITHUB }, 'JITCTL_SERVER_TRUSTED_ISSUERS: must be a list of issuers'],
    [
      'not JSON',
      '[{issuer: x}]',
      'JITCTL_SERVER_TRUSTED_ISSUERS: must be a JSON list in a variable',
    ],
  ])('%s', async (_what, value, message) => {
    const err = await refused(fromEnv(value));
    expect(err.message.startsWith(message), err.message).toBe(true);
  });

  it('suggests the key meant for a typo', async () => {
    const err = await refused(fromEnv([entry({ audiance: 'x' })]));
    expect(err.message).toBe('JITCTL_SERVER_TRUSTED_ISSUERS[0].audiance: unknown key');
    expect(err.hint).toBe('did you mean `audience`?');
  });

  it('names the file and the entry for a mistake in the config file', async () => {
    const err = await refused(
      fromFile(
        `trusted_issuers:\n  - issuer: ${GITHUB}\n    audience: x\n    conditions: { repository: a/b }\n    groups: ci\n`,
      ),
    );
    expect(err.message).toMatch(
      /c\d+\.yaml: trusted_issuers\[0\]\.groups: must be a list of group names/,
    );
  });

  it('refuses an acr outside acr_levels, and the broker itself as an issuer', async () => {
    const acr = await refused(fromEnv([entry({ acr: 'phr' })]));
    expect(acr.message).toBe('trusted_issuers[0].acr "phr" is not in acr_levels (pwd, mfa)');
    const self = await refused(
      fromEnv([entry({ issuer: 'https://jit.example.com' })], {
        JITCTL_SERVER_PUBLIC_URL: 'https://jit.example.com',
      }),
    );
    expect(self.message).toBe(
      'trusted_issuers[0].issuer must not be the broker itself (public_url)',
    );
  });
});

describe('claim conditions', () => {
  const pattern = (p: string) => ({
    claim: 'ref',
    kind: 'pattern' as const,
    pattern: p,
    regex: globToRegExp(p),
  });

  it('matches globs: * spans slashes, ? is one character, the rest is literal', () => {
    const re = globToRegExp('acme/app/.github/workflows/*.yml@refs/tags/v?.*');
    expect(re.test('acme/app/.github/workflows/deploy.yml@refs/tags/v1.2')).toBe(true);
    expect(re.test('acme/app/.github/workflows/a/b.yml@refs/tags/v1.')).toBe(true);
    expect(re.test('acme/app/.github/workflows/deploy.yml@refs/tags/v12.0')).toBe(false);
    expect(re.test('acme/appX.github/workflows/deploy.yml@refs/tags/v1.2')).toBe(false);
    expect(globToRegExp('a+b(c)').test('a+b(c)')).toBe(true);
    expect(globToRegExp('a+b(c)').test('aab(c)')).toBe(false);
  });

  it('a pattern without wildcards matches exactly itself (any text)', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('*') && !s.includes('?')),
        fc.string(),
        (p, other) => {
          const re = globToRegExp(p);
          expect(re.test(p)).toBe(true);
          if (other !== p) expect(re.test(other)).toBe(false);
        },
      ),
    );
  });

  it('says which claim failed and what the token said, never what was expected', () => {
    const values = { claim: 'ref', kind: 'values' as const, values: ['refs/heads/main'] };
    expect(conditionMismatch(values, { ref: 'refs/heads/main' })).toBeNull();
    expect(conditionMismatch(values, { ref: 'refs/heads/x' })).toBe(
      'condition `ref` not met (the token says "refs/heads/x")',
    );
    expect(conditionMismatch(values, {})).toBe('the token has no `ref` claim');
    expect(conditionMismatch(values, { ref: ['refs/heads/main'] })).toBe(
      "the token's `ref` is not a single value",
    );
    expect(conditionMismatch(pattern('refs/tags/*'), { ref: 'refs/tags/v1' })).toBeNull();
    expect(conditionMismatch({ claim: 'n', kind: 'values', values: ['1'] }, { n: 1 })).toBeNull();
  });
});
