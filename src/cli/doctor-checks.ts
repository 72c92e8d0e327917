import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { parse } from 'yaml';
import { isLoopbackHost } from '../api/loopback.js';
import type { ConfigResponse, MeResponse, RoleSummary } from '../api/schemas.js';
import type { BrokerClient } from '../client/broker-client.js';
import type { CredentialRecord, SessionRecord } from '../credentials/records.js';
import type { Context } from './context.js';
import { JitError } from './errors.js';
import { clockTime, relative, safe } from './output.js';

/**
 * The checks of `jitctl doctor` that need more than a line of code: the broker over the network
 * (reachable, TLS, clock), the identity provider, the broker's view of the session, and whether
 * kubectl's config calls jitctl. Each returns one {@link Check}; none throws and none prints a
 * secret. Network checks are bounded by {@link NET_TIMEOUT_MS}.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';
export interface Check {
  name: string;
  status: CheckStatus;
  message: string;
  fix?: string | undefined;
}

export const NET_TIMEOUT_MS = 3_000;

export const ok = (name: string, message: string, fix?: string): Check => ({
  name,
  status: 'ok',
  message,
  ...(fix ? { fix } : {}),
});
export const warn = (name: string, message: string, fix?: string): Check => ({
  name,
  status: 'warn',
  message,
  ...(fix ? { fix } : {}),
});
export const fail = (name: string, message: string, fix?: string): Check => ({
  name,
  status: 'fail',
  message,
  ...(fix ? { fix } : {}),
});

/** A JitError as a failed check (its message and hint), anything else as its message. */
export function fromError(name: string, err: unknown, status: CheckStatus = 'fail'): Check {
  const message =
    err instanceof JitError ? err.message : safe((err as Error)?.message ?? String(err));
  const fix = err instanceof JitError ? err.hint : undefined;
  return { name, status, message, ...(fix ? { fix } : {}) };
}

/** Races `p` against the network budget. */
export async function bounded<T>(p: Promise<T>, ms = NET_TIMEOUT_MS, what = 'it'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new JitError(`${what} did not answer within ${ms / 1000} s`)),
      ms,
    );
    timer.unref();
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- the broker ----------------------------------------------------------------------------

export interface BrokerProbe {
  config: ConfigResponse;
  /** Broker clock minus ours (ms), from the Date header; undefined without one. */
  skewMs: number | undefined;
}

export async function probeBroker(
  client: BrokerClient,
  cliVersion: string,
  now: () => number,
): Promise<{ check: Check; probe: BrokerProbe | undefined }> {
  const server = client.server;
  try {
    const before = now();
    const r = await bounded(
      client.call<ConfigResponse>('GET', '/v1/config', { auth: false, attempts: 1 }),
      NET_TIMEOUT_MS,
      `the broker at ${server}`,
    );
    const after = now();
    const date = r.headers.date;
    const at = typeof date === 'string' ? Date.parse(date) : Number.NaN;
    // The Date header has whole seconds: compare with the middle of the round trip, plus 0.5 s.
    const skewMs = Number.isNaN(at) ? undefined : at + 500 - (before + after) / 2;
    const version = typeof r.body?.version === 'string' ? r.body.version : 'unknown';
    const probe = { config: r.body, skewMs };
    const line = `${server} answers (broker ${safe(version)}, ${after - before} ms)`;
    if (
      version !== cliVersion &&
      version.split('.').slice(0, 2).join('.') !== cliVersion.split('.').slice(0, 2).join('.')
    ) {
      return {
        check: warn(
          'broker',
          `${line}; this jitctl is ${cliVersion}`,
          'use the same minor version on both sides (npm install -g jitctl@<broker version>)',
        ),
        probe,
      };
    }
    return { check: ok('broker', line), probe };
  } catch (err) {
    const check = fromError('broker', err);
    check.fix ??= 'check that the broker is running and that --server / JITCTL_SERVER is right';
    return { check, probe: undefined };
  }
}

export function clockCheck(probe: BrokerProbe | undefined): Check {
  if (!probe) return warn('clock', 'not checked: the broker did not answer');
  if (probe.skewMs === undefined)
    return warn('clock', 'not checked: the broker sent no Date header');
  const s = Math.round(probe.skewMs / 1000);
  const text =
    s === 0
      ? 'in step with the broker (within 1 s)'
      : `${Math.abs(s)} s ${s > 0 ? 'behind' : 'ahead of'} the broker`;
  const fix = 'turn on time synchronisation (timedatectl set-ntp true, or your OS settings)';
  if (Math.abs(s) > 60)
    return fail('clock', `${text}: tokens will look expired or not yet valid`, fix);
  if (Math.abs(s) > 5) return warn('clock', text, fix);
  return ok('clock', text);
}

/** The certificate the broker presents (https), or what plain http means. */
export async function tlsCheck(server: string): Promise<Check> {
  const url = new URL(server);
  if (url.protocol === 'http:') {
    return isLoopbackHost(url.hostname)
      ? ok('tls', 'plain http on loopback (a development broker)')
      : warn(
          'tls',
          'plain http to a non-loopback broker (JITCTL_ALLOW_INSECURE_HTTP=1)',
          'use https outside test networks',
        );
  }
  const port = Number(url.port || 443);
  try {
    const info = await bounded(
      new Promise<{
        authorized: boolean;
        error: string | undefined;
        validTo: number;
        protocol: string | null;
      }>((res, rej) => {
        const socket = tlsConnect(
          { host: url.hostname, port, servername: url.hostname, rejectUnauthorized: false },
          () => {
            const cert = socket.getPeerCertificate();
            res({
              authorized: socket.authorized,
              error: socket.authorizationError ? String(socket.authorizationError) : undefined,
              validTo: Date.parse(cert.valid_to),
              protocol: socket.getProtocol(),
            });
            socket.end();
          },
        );
        socket.once('error', rej);
      }),
      NET_TIMEOUT_MS,
      `${url.host} (TLS)`,
    );
    if (!info.authorized) {
      return fail(
        'tls',
        `the broker's certificate is not trusted: ${safe(info.error ?? 'unknown reason')}`,
        'if your organisation has its own CA, point NODE_EXTRA_CA_CERTS at its certificate',
      );
    }
    const days = Math.floor((info.validTo - Date.now()) / 86_400_000);
    const text = `${info.protocol ?? 'TLS'}, certificate valid for ${days} more day${days === 1 ? '' : 's'}`;
    return days < 14
      ? warn('tls', text, 'tell whoever runs the broker to renew its certificate')
      : ok('tls', text);
  } catch (err) {
    return fromError('tls', err);
  }
}

/** The identity provider the broker names: its discovery document, fetched the way login does. */
export async function idpCheck(config: ConfigResponse | undefined): Promise<Check> {
  if (!config) return warn('identity provider', 'not checked: the broker did not answer');
  const issuer = config.issuer;
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  try {
    const res = await fetch(url, {
      signal: AbortSignal.timeout(NET_TIMEOUT_MS),
      redirect: 'error',
    });
    if (!res.ok)
      return fail(
        'identity provider',
        `${safe(issuer)} answered HTTP ${res.status}`,
        'tell whoever runs the broker: its identity provider is not serving discovery',
      );
    const doc = (await res.json()) as { issuer?: unknown; device_authorization_endpoint?: unknown };
    if (doc.issuer !== issuer)
      return fail(
        'identity provider',
        `${safe(issuer)} names another issuer in its discovery document`,
        'the broker or its identity provider is misconfigured',
      );
    const device =
      typeof doc.device_authorization_endpoint === 'string'
        ? 'device code and browser sign-in'
        : 'browser sign-in only';
    return ok('identity provider', `${safe(issuer)} (${device})`);
  } catch (err) {
    return fail(
      'identity provider',
      `cannot reach ${safe(issuer)}: ${safe((err as Error).message)}`,
      'check your network; signing in and refreshing need the identity provider',
    );
  }
}

// ---- the session at the broker -------------------------------------------------------------

/** What the broker makes of the session: who, groups, and the usual misconfigured scope. */
export function viewCheck(session: SessionRecord, me: MeResponse, roles: RoleSummary[]): Check[] {
  const checks: Check[] = [];
  const may = me.requestable.length > 0 ? me.requestable.map(safe).join(', ') : 'nothing';
  const reviews =
    me.reviewable.length > 0 ? `; may review ${me.reviewable.map(safe).join(', ')}` : '';
  const groups = me.groups.length > 0 ? me.groups.map(safe).join(', ') : 'none';
  checks.push(
    ok(
      'access',
      `the broker knows you as ${safe(me.name ?? me.sub)} (groups: ${groups}); may request ${may}${reviews}`,
    ),
  );
  const byGroup = roles.filter((r) =>
    [...r.requesters, ...r.approvers].some((p) => p.startsWith('group:')),
  );
  if (me.groups.length === 0 && byGroup.length > 0) {
    checks.push(
      warn(
        'groups',
        `your token carries no groups, but ${byGroup.length} role${byGroup.length === 1 ? '' : 's'} (${byGroup
          .slice(0, 3)
          .map((r) => safe(r.name))
          .join(', ')}${byGroup.length > 3 ? ', …' : ''}) match on groups`,
        "the identity provider is probably not sending the groups claim: ask for its groups scope (or claim mapping) in the broker's oidc_scopes / groups_claim, then `jitctl login` again",
      ),
    );
  }
  const stronger = roles.filter((r) => r.can_request && r.step_up && r.step_up.acr !== session.acr);
  if (stronger.length > 0) {
    checks.push(
      ok(
        'step-up',
        `your sign-in is ${safe(session.acr ?? 'of unknown strength')}; ${stronger.map((r) => `${safe(r.name)} needs ${safe(r.step_up!.acr)} within ${safe(r.step_up!.max_age)}`).join(', ')} (jitctl asks when needed)`,
      ),
    );
  }
  return checks;
}

export function credentialsCheck(records: CredentialRecord[], now: number): Check {
  if (records.length === 0) return ok('credentials', 'none stored');
  const active = records.filter((r) => Date.parse(r.expiresAt) > now);
  const expired = records.length - active.length;
  const list = active
    .map(
      (r) =>
        `${safe(r.role)} until ${clockTime(Date.parse(r.expiresAt))} (${relative(Date.parse(r.expiresAt), now).replace(/^in /, '')})`,
    )
    .join(', ');
  const text = `${active.length} active${list ? `: ${list}` : ''}${expired ? `; ${expired} expired` : ''}`;
  return active.length === 0
    ? warn('credentials', text, 'request a role again: jitctl request <role>')
    : ok('credentials', text);
}

// ---- kubectl -------------------------------------------------------------------------------

interface ExecUser {
  file: string;
  user: string;
  command: string;
  args: string[];
  apiVersion: string | undefined;
}

/** kubectl's kubeconfig files: $KUBECONFIG (a path list), else ~/.kube/config. */
export function kubeconfigFiles(env: Context['env']): string[] {
  if (env.KUBECONFIG) return env.KUBECONFIG.split(delimiter).filter(Boolean);
  return env.HOME ? [join(env.HOME, '.kube', 'config')] : [];
}

async function execUsers(
  files: string[],
): Promise<{ users: ExecUser[]; read: string[]; bad: string[] }> {
  const users: ExecUser[] = [];
  const read: string[] = [];
  const bad: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    read.push(file);
    let doc: unknown;
    try {
      doc = parse(text);
    } catch {
      bad.push(file);
      continue;
    }
    const list = (doc as { users?: unknown } | null)?.users;
    if (!Array.isArray(list)) continue;
    for (const u of list as Array<{ name?: unknown; user?: { exec?: Record<string, unknown> } }>) {
      const exec = u?.user?.exec;
      if (!exec || typeof exec.command !== 'string') continue;
      const args = Array.isArray(exec.args)
        ? exec.args.filter((a): a is string => typeof a === 'string')
        : [];
      const base = exec.command.split(/[\\/]/).pop() ?? '';
      if (!/^jitctl(\.js|\.cmd|\.exe)?$/.test(base) && !args.some((a) => /jitctl(\.js)?$/.test(a)))
        continue;
      users.push({
        file,
        user: typeof u.name === 'string' ? u.name : '?',
        command: exec.command,
        args,
        apiVersion: typeof exec.apiVersion === 'string' ? exec.apiVersion : undefined,
      });
    }
  }
  return { users, read, bad };
}

/** Where kubectl would find `command` (relative paths are relative to the kubeconfig's directory). */
async function findCommand(
  command: string,
  file: string,
  env: Context['env'],
): Promise<string | undefined> {
  const candidates = command.includes('/')
    ? [isAbsolute(command) ? command : resolve(dirname(file), command)]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, command));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

export async function kubectlChecks(
  ctx: Pick<Context, 'env'>,
  hasCredential: (role: string) => boolean,
): Promise<Check[]> {
  const files = kubeconfigFiles(ctx.env);
  const { users, read, bad } = await execUsers(files);
  const checks: Check[] = bad.map((f) =>
    fail('kubectl', `${f} is not valid YAML`, 'fix the file; kubectl cannot read it either'),
  );
  if (read.length === 0)
    return [
      ...checks,
      ok('kubectl', `no kubeconfig (${files.join(', ') || 'none'}): nothing to check`),
    ];
  if (users.length === 0) {
    const readable = read.filter((f) => !bad.includes(f));
    if (readable.length > 0)
      checks.push(ok('kubectl', `no user in ${readable.join(', ')} calls jitctl`));
    return checks;
  }
  for (const u of users) {
    const where = `user ${safe(u.user)} in ${u.file}`;
    const found = await findCommand(u.command, u.file, ctx.env);
    if (!found) {
      checks.push(
        fail(
          'kubectl',
          `${where} runs ${safe(u.command)}, which is not on PATH`,
          'install jitctl on PATH (npm install -g jitctl), or give the absolute path in users[].user.exec.command',
        ),
      );
      continue;
    }
    if (
      u.apiVersion !== 'client.authentication.k8s.io/v1' &&
      u.apiVersion !== 'client.authentication.k8s.io/v1beta1'
    ) {
      checks.push(
        fail(
          'kubectl',
          `${where}: exec apiVersion ${safe(u.apiVersion ?? '(none)')} is not one jitctl answers`,
          'use client.authentication.k8s.io/v1 (or v1beta1 for kubectl before 1.22)',
        ),
      );
      continue;
    }
    const at = u.args.indexOf('credential');
    if (at === -1 || !u.args.includes('--kube')) {
      checks.push(
        warn(
          'kubectl',
          `${where} calls ${found} without \`credential … --kube\``,
          'args: [credential, <role>, --kube]',
        ),
      );
      continue;
    }
    const role = u.args[at + 1] && !u.args[at + 1]!.startsWith('-') ? u.args[at + 1]! : undefined;
    if (role && !hasCredential(role)) {
      checks.push(
        warn(
          'kubectl',
          `${where} calls ${found} for ${safe(role)}, which has no active credential`,
          `kubectl fails until you run: jitctl request ${safe(role)}`,
        ),
      );
      continue;
    }
    checks.push(ok('kubectl', `${where} calls ${found}${role ? ` for ${safe(role)}` : ''}`));
  }
  return checks;
}
