import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLoopbackHost } from '../api/loopback.js';
import type { Context } from './context.js';
import { AuthError, UsageError } from './errors.js';

/**
 * The user's settings: `$XDG_CONFIG_HOME/jitctl/config.json`. Precedence everywhere: flag, then
 * `JITCTL_*` variable, then this file, then the default.
 */
export const STORE_KINDS = ['keychain', 'file', 'memory'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export interface UserConfig {
  /** The broker used when no --server is given. */
  server?: string;
  /** The credential store (default keychain). */
  store?: StoreKind;
  /** How long the unlock agent keeps the file store unlocked (a duration, or "off"). */
  agent_timeout?: string;
}

export function configFile(ctx: Pick<Context, 'paths'>): string {
  return join(ctx.paths.configDir, 'config.json');
}

export async function loadUserConfig(ctx: Pick<Context, 'paths'>): Promise<UserConfig> {
  const file = configFile(ctx);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not valid JSON`, { hint: `fix or delete ${file}` });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${file} must hold a JSON object`, { hint: `fix or delete ${file}` });
  }
  const out: UserConfig = {};
  const v = value as Record<string, unknown>;
  if (v.server !== undefined) {
    if (typeof v.server !== 'string')
      throw new UsageError(`${file}: "server" must be a string URL`);
    out.server = v.server;
  }
  if (v.store !== undefined) out.store = parseStoreKind(v.store, `${file}: "store"`);
  if (v.agent_timeout !== undefined) {
    if (typeof v.agent_timeout !== 'string')
      throw new UsageError(`${file}: "agent_timeout" must be a string such as "15m" or "off"`);
    out.agent_timeout = v.agent_timeout;
  }
  return out;
}

/** Merges `patch` into the config file (written atomically, 0600). */
export async function saveUserConfig(
  ctx: Pick<Context, 'paths'>,
  patch: Partial<UserConfig>,
): Promise<void> {
  const current = await loadUserConfig(ctx);
  const next = { ...current, ...patch };
  await mkdir(ctx.paths.configDir, { recursive: true, mode: 0o700 });
  const file = configFile(ctx);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export function parseStoreKind(value: unknown, where: string): StoreKind {
  if (typeof value === 'string' && (STORE_KINDS as readonly string[]).includes(value)) {
    return value as StoreKind;
  }
  throw new UsageError(`${where}: unknown credential store ${JSON.stringify(value)}`, {
    hint: `choose one of ${STORE_KINDS.join(', ')}`,
  });
}

/**
 * The broker's base URL in canonical form (no trailing slash), used as the namespace of every
 * stored entry. Plain http is accepted only for loopback brokers (development) unless
 * JITCTL_ALLOW_INSECURE_HTTP=1.
 */
export function normalizeServer(
  input: string,
  env: Record<string, string | undefined>,
  where = '--server',
): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new UsageError(`${where} ${JSON.stringify(input)} is not a URL`, {
      hint: 'a broker URL looks like https://jit.example.com',
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(
      `${where} ${JSON.stringify(input)}: only https:// (or http:// on loopback) is supported`,
    );
  }
  if (
    url.protocol === 'http:' &&
    !isLoopbackHost(url.hostname) &&
    env.JITCTL_ALLOW_INSECURE_HTTP !== '1'
  ) {
    throw new UsageError(`${where} ${input}: refusing plain http to a non-loopback host`, {
      hint: 'use https, or set JITCTL_ALLOW_INSECURE_HTTP=1 for a test network',
    });
  }
  if (url.username || url.password)
    throw new UsageError(`${where}: credentials in the URL are not allowed`);
  url.search = '';
  url.hash = '';
  return url.href.replace(/\/+$/, '');
}

/**
 * The broker to talk to: --server, JITCTL_SERVER, then the config file. A flag given empty is
 * refused (exit 2), never read as "not given".
 */
export async function resolveServer(ctx: Context, flag?: string): Promise<string> {
  if (flag !== undefined) return normalizeServer(flag, ctx.env);
  if (ctx.env.JITCTL_SERVER)
    return normalizeServer(ctx.env.JITCTL_SERVER, ctx.env, 'JITCTL_SERVER');
  const config = await loadUserConfig(ctx);
  if (config.server) return normalizeServer(config.server, ctx.env, `${configFile(ctx)}: "server"`);
  throw new AuthError('no broker configured', {
    hint: 'run `jitctl login --server https://jit.example.com` (or set JITCTL_SERVER)',
  });
}

/** The credential store to use: --store, JITCTL_STORE, the config file, then keychain. */
export async function resolveStoreKind(ctx: Context, flag?: string): Promise<StoreKind> {
  if (flag !== undefined) return parseStoreKind(flag, '--store');
  if (ctx.env.JITCTL_STORE) return parseStoreKind(ctx.env.JITCTL_STORE, 'JITCTL_STORE');
  const config = await loadUserConfig(ctx);
  return config.store ?? 'keychain';
}
