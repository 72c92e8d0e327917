import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { testIO } from '../../src/cli/io.js';
import { run } from '../../src/commands/policy.js';
import { BIN, type CliResult, runCli, testHome } from '../support/cli.js';

const home = testHome();
const dir = mkdtempSync(join(tmpdir(), 'jitctl-policy-cli-'));
afterAll(() => {
  home.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const SECRET_PATH = 'services/T000/B000/XXXXsecretXXXX';
const GOOD = `roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]
    approvers: [group:leads]
    max_duration: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    credential:
      audience: https://k8s.prod.example.com
      env: { KUBE_TOKEN: "{{token}}" }
  db-read:
    requesters: [group:developers, user:alice@example.com]
    approvers: [group:dba]
    approvals: 0
    max_duration: 4h
    credential: { audience: postgres }
notify:
  - webhook: https://hooks.example.com/${SECRET_PATH}
  - email: [approvers, oncall@example.com]
    roles: [prod-deploy]
`;
const BAD = `roles:
  prod-deploy:
    requesters: [developers]
    aprovers: [group:leads]
    max_duration: 15x
    credential: { audience: https://k8s.prod.example.com }
`;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const check = (args: string[], input?: string) =>
  runCli(['policy', 'check', ...args], {
    env: home.env,
    ...(input !== undefined ? { input } : {}),
  });

describe('jitctl policy check', () => {
  it('prints a summary table of a valid policy and exits 0', async () => {
    const path = file('good.yaml', GOOD);
    const r = await check([path]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^ROLE\s+REQUESTERS\s+APPROVERS\s+APPROVALS\s+MAX DURATION\s+STEP-UP\s+REASON$/,
    );
    expect(lines[1]).toMatch(
      /^prod-deploy\s+group:developers\s+group:leads\s+1\s+1h\s+mfa within 5m\s+required$/,
    );
    expect(lines[2]).toMatch(
      /^db-read\s+group:developers, user:alice@example.com\s+group:dba\s+0 \(auto\)\s+4h\s+-\s+-$/,
    );
    expect(lines).toHaveLength(3);
    expect(r.stderr).toBe(
      `✔ ${path} is a valid policy: 2 roles, events to https://hooks.example.com, email (approvers, oncall@example.com)\n`,
    );
    expect(r.stdout + r.stderr).not.toContain(SECRET_PATH);
  });

  it('prints {ok: true, roles} with --json', async () => {
    const r = await check([file('good.yaml', GOOD), '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      roles: Record<string, unknown>[];
      notify: unknown;
    };
    expect(out.ok).toBe(true);
    expect(out.roles.map((x) => x.name)).toEqual(['prod-deploy', 'db-read']);
    expect(out.roles[0]).toEqual({
      name: 'prod-deploy',
      description: 'Deploy to production',
      default_duration: '15m',
      max_duration: '1h',
      pending_ttl: '1h',
      approvals: 1,
      denials: 1,
      require_reason: true,
      step_up: { acr: 'mfa', max_age: '5m' },
      requesters: ['group:developers'],
      approvers: ['group:leads'],
      audience: 'https://k8s.prod.example.com',
      env: ['KUBE_TOKEN'],
      approvals_by: null,
      require_review_comment: false,
      extend: null,
      break_glass: null,
      max_pending: 3,
      rules: [],
      credential_ttl: '15m',
      use: {
        on_revoke: 'end',
        kill_at_expiry: false,
        audit_commands: 'name',
        audit_commands_required: false,
      },
    });
    expect(out.notify).toEqual([
      {
        kind: 'webhook',
        origin: 'https://hooks.example.com',
        format: 'standard',
        secret: 'default',
        roles: null,
        events: null,
      },
      {
        kind: 'email',
        to: ['approvers', 'oncall@example.com'],
        roles: ['prod-deploy'],
        events: null,
      },
    ]);
    expect(r.stdout).not.toContain(SECRET_PATH);
  });

  it('prints every problem as file:line:col: path: message and exits 1', async () => {
    const path = file('bad.yaml', BAD);
    const r = await check([path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      `${path}:3:18: roles.prod-deploy.requesters[0]: \`developers\` needs a kind: write \`group:developers\` (entries look like group:<name> or user:<sub or email>)`,
      `${path}:4:5: roles.prod-deploy.aprovers: unknown key \`aprovers\`; did you mean \`approvers\`?`,
      `${path}:5:19: roles.prod-deploy.max_duration: "15x" is not a duration: durations look like 15m, 1h30m, 90s or 2d`,
      // The page shipped in the package (the test build has it beside dist/, as the package does).
      `✖ ${path}: 3 problems (the policy reference: ${join(dirname(dirname(BIN)), 'docs', 'policy.md')})`,
      '',
    ]);
  });

  it('prints {ok: false, issues} with --json and still exits 1', async () => {
    const path = file('bad.yaml', BAD);
    const r = await check(['--json', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { ok: boolean; issues: unknown[] };
    expect(out.ok).toBe(false);
    expect(out.issues).toHaveLength(3);
    expect(out.issues[2]).toEqual({
      file: path,
      line: 5,
      column: 19,
      path: 'roles.prod-deploy.max_duration',
      message: '"15x" is not a duration: durations look like 15m, 1h30m, 90s or 2d',
    });
  });

  it('says clearly when the file is missing or a directory', async () => {
    const missing = join(dir, 'nope.yaml');
    const r = await check([missing]);
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: `${missing}: no such file\n` });
    const json = await check([missing, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      ok: false,
      file: missing,
      issues: [{ file: missing, line: null, column: null, path: '', message: 'no such file' }],
    });
    const sub = join(dir, 'sub');
    mkdirSync(sub, { recursive: true });
    expect(await check([sub])).toMatchObject({
      code: 1,
      stderr: `${sub}: is a directory, not a policy file\n`,
    });
  });

  it('says permission denied for a file it may not read', async () => {
    // Root reads anything, so as root the check runs as `nobody`.
    const shared = mkdtempSync(join(tmpdir(), 'jitctl-policy-perm-'));
    chmodSync(shared, 0o755);
    const path = join(shared, 'secret.yaml');
    writeFileSync(path, GOOD, { mode: 0o600 });
    chmodSync(path, 0o000);
    const asNobody = process.getuid?.() === 0;
    const r = await new Promise<CliResult>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'policy', 'check', path], {
        env: { ...home.env, HOME: shared },
        ...(asNobody ? { uid: 65534, gid: 65534 } : {}),
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    rmSync(shared, { recursive: true, force: true });
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: `${path}: permission denied\n` });
  });

  it('reads the policy from stdin with -', async () => {
    const good = await check(['-', '--json'], GOOD);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, file: '<stdin>' });
    const bad = await check(['-'], BAD);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('<stdin>:5:19: roles.prod-deploy.max_duration: "15x"');
  });

  it('shows terminal escapes in a file as visible text, never raw', async () => {
    const r = await check([file('escape.yaml', `"\\e[2J\\e[31mroles": {}\n`)]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('\u001b');
    expect(r.stderr).toContain('unknown key `\\x1b[2J\\x1b[31mroles`');
  });

  it('exits 2 without a file argument', async () => {
    const r = await runCli(['policy', 'check'], { env: home.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'file'");
  });

  it('refuses to read the policy from a terminal', async () => {
    const io = testIO({ tty: true });
    await expect(run({ file: '-' }, createContext({ io, env: {} }))).rejects.toMatchObject({
      exitCode: 2,
      message: '`-` reads the policy from stdin, which is a terminal',
    });
  });
});
