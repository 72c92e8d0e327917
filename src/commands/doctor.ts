import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VERSION } from '../api/version.js';
import { rememberRoles } from '../cli/broker-cache.js';
import {
  configFile,
  loadUserConfig,
  normalizeServer,
  parseStoreKind,
  type StoreKind,
} from '../cli/config.js';
import type { Context } from '../cli/context.js';
import {
  bounded,
  type Check,
  clockCheck,
  credentialsCheck,
  fail,
  fromError,
  idpCheck,
  kubectlChecks,
  NET_TIMEOUT_MS,
  ok,
  probeBroker,
  tlsCheck,
  viewCheck,
  warn,
} from '../cli/doctor-checks.js';
import { printJson, relative, safe, style } from '../cli/output.js';
import type { CredentialRecord, SessionRecord } from '../credentials/records.js';
import type { CredentialStore } from '../credentials/store.js';

/**
 * `jitctl doctor [--json]`: what a person (or whoever helps them) wants to know when jitctl does
 * not work: Node, the config and where each setting came from, the broker (reachable, version,
 * TLS, clock), its identity provider, the credential store (and the unlock agent), the session
 * and what the broker makes of it, stored credentials, and whether kubectl's config calls jitctl.
 * One line per check with ✓, ! or ✗ and a fix; exit 1 when any check fails. Network checks time
 * out after a few seconds; nothing secret is ever printed (tokens are not even shown masked).
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
}

const MIN_NODE = [20, 19] as const;

export async function run(options: Options, ctx: Context): Promise<number> {
  const checks: Check[] = [];
  const add = (...c: Check[]) => {
    checks.push(...c);
    if (!options.json) for (const one of c) printCheck(ctx, one);
  };

  // ---- this machine and its settings ----
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const nodeOk = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  add(
    nodeOk
      ? ok('node', `Node.js ${process.versions.node} (jitctl needs 20.19 or newer)`)
      : fail(
          'node',
          `Node.js ${process.versions.node} is too old`,
          'install Node.js 20.19 or newer',
        ),
  );
  add(ok('jitctl', `jitctl ${VERSION} (${ctx.self.args[0] ?? ctx.self.command})`));

  const file = configFile(ctx);
  let config: Awaited<ReturnType<typeof loadUserConfig>> = {};
  try {
    config = await loadUserConfig(ctx);
    add(ok('config', existsSync(file) ? file : `${file} (not written yet: defaults apply)`));
  } catch (err) {
    add(fromError('config', err));
  }

  let server: string | undefined;
  try {
    const [value, from] =
      options.server !== undefined
        ? [normalizeServer(options.server, ctx.env), '--server']
        : ctx.env.JITCTL_SERVER
          ? [normalizeServer(ctx.env.JITCTL_SERVER, ctx.env, 'JITCTL_SERVER'), 'JITCTL_SERVER']
          : config.server
            ? [normalizeServer(config.server, ctx.env, `${file}: "server"`), file]
            : [undefined, undefined];
    server = value;
    add(
      server
        ? ok('server', `${server} (from ${from})`)
        : fail(
            'server',
            'no broker configured',
            'jitctl login --server https://jit.example.com (or set JITCTL_SERVER)',
          ),
    );
  } catch (err) {
    add(fromError('server', err));
  }

  let kind: StoreKind = 'keychain';
  let kindFrom = 'the default';
  try {
    if (options.store !== undefined)
      [kind, kindFrom] = [parseStoreKind(options.store, '--store'), '--store'];
    else if (ctx.env.JITCTL_STORE)
      [kind, kindFrom] = [parseStoreKind(ctx.env.JITCTL_STORE, 'JITCTL_STORE'), 'JITCTL_STORE'];
    else if (config.store) [kind, kindFrom] = [config.store, file];
  } catch (err) {
    add(fromError('store', err));
  }

  // ---- the broker over the network ----
  const { BrokerClient } = await import('../client/broker-client.js');
  let brokerConfig: Awaited<ReturnType<typeof probeBroker>>['probe'];
  if (server) {
    const anon = new BrokerClient({
      server,
      clock: ctx.clock,
      attempts: 1,
      connectTimeoutMs: NET_TIMEOUT_MS,
      readTimeoutMs: NET_TIMEOUT_MS,
    });
    try {
      const { check, probe } = await probeBroker(anon, VERSION, () => ctx.clock.now());
      brokerConfig = probe;
      add(check);
      add(await tlsCheck(server));
      add(clockCheck(probe));
      add(await idpCheck(probe?.config));
    } finally {
      await anon.close();
    }
  }

  // ---- the store, the session, the broker's view ----
  const store = await storeChecks(ctx, kind, kindFrom, add);
  let session: SessionRecord | undefined;
  let records: CredentialRecord[] = [];
  if (store && server) {
    const [{ decodeSession, sessionKey }, { storedCredentials }] = await Promise.all([
      import('../credentials/records.js'),
      import('../credentials/active.js'),
    ]);
    try {
      session = decodeSession(
        await bounded(store.get(sessionKey(server)), 15_000, 'the credential store'),
      );
      add(sessionCheck(session, server, ctx.clock.now()));
    } catch (err) {
      add(fromError('session', err));
    }
    try {
      records = await bounded(storedCredentials({ server, store }), 15_000, 'the credential store');
      add(credentialsCheck(records, ctx.clock.now()));
    } catch (err) {
      add(fromError('credentials', err));
    }
    if (session && brokerConfig) add(...(await brokerView(ctx, server, store)));
  }

  // ---- kubectl ----
  const now = ctx.clock.now();
  add(
    ...(await kubectlChecks(ctx, (role) =>
      records.some((r) => r.role === role && Date.parse(r.expiresAt) > now),
    )),
  );

  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  if (options.json) {
    printJson(ctx.io, { ok: failed === 0, checks });
  } else {
    ctx.io.out(
      failed > 0
        ? `\n${failed} check${failed === 1 ? '' : 's'} failed${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}\n`
        : `\nall checks passed${warned ? ` (${warned} warning${warned === 1 ? '' : 's'})` : ''}\n`,
    );
  }
  return failed > 0 ? 1 : 0;
}

function printCheck(ctx: Context, c: Check): void {
  const mark =
    c.status === 'ok'
      ? styleMark(ctx, 'green', '✓')
      : c.status === 'warn'
        ? styleMark(ctx, 'yellow', '!')
        : styleMark(ctx, 'red', '✗');
  ctx.io.out(`${mark} ${c.name.padEnd(17)} ${c.message}\n`);
  if (c.fix) ctx.io.out(`  ${''.padEnd(17)} fix: ${c.fix}\n`);
}

function styleMark(ctx: Context, color: 'green' | 'yellow' | 'red', mark: string): string {
  return ctx.io.stdoutIsTTY ? style(ctx.io, color, mark) : mark;
}

/** The store: reachable (keychain), or its directory, passphrase source and the agent (file). */
async function storeChecks(
  ctx: Context,
  kind: StoreKind,
  from: string,
  add: (...c: Check[]) => void,
): Promise<CredentialStore | undefined> {
  if (kind === 'memory') {
    add(
      warn(
        'store',
        `memory (from ${from}): nothing outlives a command`,
        'choose keychain or file for a session that lasts',
      ),
    );
    return undefined;
  }
  if (kind === 'keychain') {
    const { keychainStore } = await import('../credentials/keychain-store.js');
    const store = keychainStore({ env: ctx.env, timeoutMs: NET_TIMEOUT_MS });
    try {
      await store.list('');
      add(ok('store', `${store.description} (from ${from}): reachable`));
      return store;
    } catch (err) {
      add(fromError('store', err));
      return undefined;
    }
  }
  const dir = join(ctx.paths.dataDir, 'store');
  const [{ openStore }, agent] = await Promise.all([
    import('../credentials/index.js'),
    import('../credentials/file-store.js'),
  ]);
  const { checkPrivateDir } = agent;
  try {
    const exists = await checkPrivateDir(dir, false, 'the credential store');
    add(
      ok('store', `encrypted files in ${dir} (from ${from})${exists ? '' : ', not created yet'}`),
    );
  } catch (err) {
    add(fromError('store', err));
    return undefined;
  }
  let ttl: number | undefined;
  try {
    ttl = await agent.resolveAgentTimeout(ctx);
  } catch (err) {
    add(fromError('agent', err));
  }
  const loc = agent.agentLocation(ctx);
  let status: Awaited<ReturnType<typeof agent.agentStatus>>;
  try {
    status = await agent.agentStatus(loc);
  } catch (err) {
    add(fromError('agent', err));
  }
  const until = status?.keys.length ? Math.max(...status.keys.map((k) => k.expires_at)) : undefined;
  const now = ctx.clock.now();
  if (ttl === undefined) {
    add(
      status
        ? warn('agent', `off, but an agent is still running (pid ${status.pid})`, 'jitctl lock')
        : ok(
            'agent',
            'off: the passphrase is needed by every command (JITCTL_AGENT_TIMEOUT=15m keeps the store unlocked for a while)',
          ),
    );
  } else if (status) {
    add(
      ok(
        'agent',
        `on, running (pid ${status.pid}, socket ${loc.socket})${until ? `: unlocked until ${new Date(until).toTimeString().slice(0, 5)} (${relative(until, now)})` : ''}`,
      ),
    );
  } else {
    add(ok('agent', `on (${Math.round(ttl / 60_000)}m), not running: the next unlock starts it`));
  }
  const source = ctx.env.JITCTL_FILE_PASSPHRASE
    ? ok('passphrase', 'from JITCTL_FILE_PASSPHRASE')
    : until && ttl !== undefined
      ? ok('passphrase', 'not needed while the agent holds the key')
      : ctx.io.canPrompt()
        ? ok('passphrase', 'asked on this terminal when needed')
        : fail(
            'passphrase',
            'no terminal to ask on and JITCTL_FILE_PASSPHRASE is not set',
            'set JITCTL_FILE_PASSPHRASE, or run jitctl on a terminal',
          );
  add(source);
  if (source.status === 'fail') return undefined;
  return openStore(ctx, 'file');
}

function sessionCheck(session: SessionRecord | undefined, server: string, now: number): Check {
  if (!session)
    return fail('session', `not signed in to ${server}`, `jitctl login --server ${server}`);
  const who = safe(session.identity.name ?? session.identity.sub);
  const strength = `acr ${safe(session.acr ?? 'none')}${session.authTime ? `, signed in ${relative(session.authTime, now)}` : ''}`;
  const groups =
    session.identity.groups.length > 0 ? session.identity.groups.map(safe).join(', ') : 'none';
  const base = `${who}${session.kind === 'federated' ? ' (pipeline)' : ''}; ${strength}; groups: ${groups}`;
  if (session.expiresAt > now)
    return ok('session', `${base}; token expires ${relative(session.expiresAt, now)}`);
  if (session.refreshToken)
    return ok(
      'session',
      `${base}; token expired ${relative(session.expiresAt, now)}, renewed on next use`,
    );
  return fail(
    'session',
    `${base}; expired ${relative(session.expiresAt, now)}`,
    `jitctl login --server ${server}`,
  );
}

/** GET /v1/me and /v1/roles with the stored session (bounded; a due refresh happens here). */
async function brokerView(ctx: Context, server: string, store: CredentialStore): Promise<Check[]> {
  const [{ StoredSession }, { BrokerClient }] = await Promise.all([
    import('../auth/index.js'),
    import('../client/broker-client.js'),
  ]);
  const session = new StoredSession(ctx, server, store);
  const client = new BrokerClient({
    server,
    session,
    clock: ctx.clock,
    attempts: 1,
    connectTimeoutMs: NET_TIMEOUT_MS,
    readTimeoutMs: NET_TIMEOUT_MS,
  });
  try {
    const [me, roles] = await bounded(
      Promise.all([client.me(), client.roles()]),
      2 * NET_TIMEOUT_MS,
      `the broker at ${server}`,
    );
    await rememberRoles(ctx, server, roles.roles);
    const current = await session.current();
    return current ? viewCheck(current, me, roles.roles) : [];
  } catch (err) {
    return [fromError('access', err)];
  } finally {
    await client.close();
  }
}
