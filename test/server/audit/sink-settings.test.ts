import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSinks } from '../../../src/server/audit/sinks/worker.js';
import { ConfigError, loadServerConfig } from '../../../src/server/config.js';

/**
 * `audit_sinks` and `audit_checkpoint_interval` in the broker's config: what a correct entry
 * becomes, and that every mistake stops the broker naming the entry and key, without echoing a
 * secret or a URL's path.
 */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-sinkcfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function load(yaml: string) {
  const file = join(dir, 'jitctl.yaml');
  writeFileSync(file, yaml);
  return loadServerConfig({
    flags: {
      policy: join(dir, 'p.yaml'),
      oidc_issuer: 'https://idp.example.com',
      oidc_client_id: 'c',
    },
    configFile: file,
    env: {},
    cwd: dir,
  });
}

async function refused(yaml: string): Promise<ConfigError> {
  const err = await load(yaml).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('audit_sinks', () => {
  it('parses the three kinds with their defaults', async () => {
    const c = await load(`
audit_sinks:
  - name: archive
    file: logs/audit.jsonl
  - name: siem
    webhook: https://siem.example.com/hooks/abc
    format: ocsf
    secret: siem
    max_lag: 15m
  - name: splunk
    splunk_hec: https://splunk.example.com:8088/services/collector/event
    token: env:SPLUNK_HEC_TOKEN
    index: security
    batch: 500
    start: end
audit_checkpoint_interval: 30m
`);
    expect(c.audit.checkpointIntervalMs).toBe(30 * 60_000);
    expect(c.audit.sinks).toEqual([
      {
        kind: 'file',
        name: 'archive',
        format: 'jsonl',
        start: 'beginning',
        maxLagMs: null,
        path: join(dir, 'logs/audit.jsonl'),
        maxBytes: 100 * 1024 * 1024,
        keep: 10,
      },
      {
        kind: 'webhook',
        name: 'siem',
        format: 'ocsf',
        start: 'beginning',
        maxLagMs: 15 * 60_000,
        url: 'https://siem.example.com/hooks/abc',
        secret: 'siem',
        batch: 100,
      },
      {
        kind: 'splunk_hec',
        name: 'splunk',
        format: 'jsonl',
        start: 'end',
        maxLagMs: null,
        url: 'https://splunk.example.com:8088/services/collector/event',
        token: { kind: 'env', name: 'SPLUNK_HEC_TOKEN' },
        index: 'security',
        sourcetype: null,
        batch: 500,
      },
    ]);
  });

  it('defaults: no sinks, a checkpoint an hour; off turns scheduled checkpoints off', async () => {
    const c = await load('log_level: info\n');
    expect(c.audit).toEqual({ sinks: [], checkpointIntervalMs: 3_600_000 });
    expect((await load('audit_checkpoint_interval: off\n')).audit.checkpointIntervalMs).toBeNull();
  });

  it.each([
    ['audit_sinks: yes', /audit_sinks: must be a list of sinks/],
    ['audit_sinks: [{ file: /tmp/a }]', /audit_sinks\[0\]\.name: must be a name/],
    ['audit_sinks: [{ name: a }]', /audit_sinks\[0\]: says nowhere to send/],
    [
      'audit_sinks: [{ name: a, file: /tmp/a, webhook: "https://x.example.com" }]',
      /gives file and webhook: one sink sends to one place/,
    ],
    [
      'audit_sinks: [{ name: a, file: /tmp/a, batch: 5 }]',
      /audit_sinks\[0\]\.batch: unknown key for a file sink/,
    ],
    [
      'audit_sinks: [{ name: a, file: /tmp/a, max_size: 10 }]',
      /max_size: must be a size from 1KiB to 100GiB/,
    ],
    [
      'audit_sinks: [{ name: a, file: /tmp/a, keep: 0 }]',
      /keep: must be a whole number from 1 to 1000/,
    ],
    ['audit_sinks: [{ name: a, file: /tmp/a, format: xml }]', /format: must be jsonl or ocsf/],
    ['audit_sinks: [{ name: a, file: /tmp/a, start: middle }]', /start: must be beginning or end/],
    ['audit_sinks: [{ name: a, file: /tmp/a, max_lag: soon }]', /max_lag:/],
    [
      'audit_sinks: [{ name: a, file: /tmp/a }, { name: a, file: /tmp/b }]',
      /audit_sinks\[1\]\.name: a is used by two sinks/,
    ],
    [
      'audit_sinks: [{ name: a, file: /tmp/a }, { name: b, file: /tmp/a }]',
      /audit_sinks\[1\]\.file: is written by another sink too/,
    ],
    ['audit_sinks: [{ name: a, webhook: "http://siem.example.com/x" }]', /must be https:\/\//],
    [
      'audit_sinks: [{ name: a, webhook: "https://siem.example.com/x", secret: whsec_abc }]',
      /secret: must name a secret of webhook_secrets \(not the secret\)/,
    ],
    ['audit_sinks: [{ name: a, splunk_hec: "https://s.example.com/c" }]', /token: is required/],
    [
      'audit_sinks: [{ name: a, splunk_hec: "https://s.example.com/c", token: abcdef123 }]',
      /token: must not hold the password itself/,
    ],
    ['audit_checkpoint_interval: 5s', /audit_checkpoint_interval: must be between 1m and 1d/],
  ])('%s is refused', async (yaml, message) => {
    const err = await refused(`${yaml}\n`);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('whsec_abc');
    expect(err.message).not.toContain('abcdef123');
    expect(err.message).not.toContain('/x');
  });

  it('at start: a missing secret or token stops the broker naming the sink', async () => {
    const c = await load(`
audit_sinks:
  - { name: siem, webhook: "https://siem.example.com/x" }
  - { name: splunk, splunk_hec: "https://s.example.com/c", token: env:HEC }
`);
    expect(() => openSinks(c.audit.sinks, {}, {})).toThrow(
      /audit_sinks\[0\] \(siem\): secret "default" is not in the broker's webhook_secrets/,
    );
    const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
    expect(() =>
      openSinks(c.audit.sinks, { default: { kind: 'env', name: 'S' } }, { S: secret }),
    ).toThrow(/audit_sinks\[1\] \(splunk\)\.token: the environment variable HEC is not set/);
    const opened = openSinks(
      c.audit.sinks,
      { default: { kind: 'env', name: 'S' } },
      { S: secret, HEC: 'tok' },
    );
    expect(opened.map((o) => String(o.secret))).toEqual(['[REDACTED]', '[REDACTED]']);
  });
});
