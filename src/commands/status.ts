import { describeGroups, describeIdentity } from '../auth/describe.js';
import { needsRefresh } from '../auth/expiry.js';
import type { Context } from '../cli/context.js';
import { AuthError } from '../cli/errors.js';
import { clockTime, printJson, relative, safe, table } from '../cli/output.js';
import {
  type CredentialSource,
  openCredentialSource,
  storedCredentials,
} from '../credentials/active.js';
import {
  decodeScheduled,
  decodeSession,
  roleOfScheduledKey,
  type SessionRecord,
  serverPrefix,
  sessionKey,
} from '../credentials/records.js';

/**
 * `jitctl status [--json]`: who you are at the broker, your session and your active credentials,
 * read from the credential store only. No network and no OIDC library: it must answer offline,
 * and it is what shell prompts and the start-up benchmark run. Secrets appear only masked.
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
}

/** The `--json` document (documented in README "status --json"). */
export interface StatusJson {
  server: string | null;
  signed_in: boolean;
  store: { kind: string; description: string } | null;
  session: {
    kind: 'oidc' | 'federated';
    issuer: string;
    client_id: string;
    identity: {
      iss: string;
      sub: string;
      name: string | null;
      email: string | null;
      groups: string[];
    };
    acr: string | null;
    auth_time: string | null;
    expires_at: string;
    expired: boolean;
    /** A refresh token is kept: the next command that needs the broker renews the session. */
    refreshable: boolean;
    token: string;
  } | null;
  credentials: Array<{
    role: string;
    request_id: string;
    expires_at: string;
    expires_in_seconds: number;
    expired: boolean;
    token: string;
  }>;
  /** Grants approved to start later (`jitctl request --at`), as this machine last saw them. */
  scheduled: Array<{ role: string; request_id: string; starts_at: string; expires_at: string }>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Scheduled grants noted in the store whose window has not ended. */
async function scheduledGrants(
  source: CredentialSource,
  now: number,
): Promise<StatusJson['scheduled']> {
  const out: StatusJson['scheduled'] = [];
  for (const key of await source.store.list(serverPrefix(source.server))) {
    const role = roleOfScheduledKey(source.server, key);
    if (role === undefined) continue;
    const g = decodeScheduled(await source.store.get(key));
    if (!g || g.role !== role || Date.parse(g.expiresAt) <= now) continue;
    out.push({ role, request_id: g.requestId, starts_at: g.startsAt, expires_at: g.expiresAt });
  }
  return out.sort((a, b) => a.starts_at.localeCompare(b.starts_at));
}

function sessionJson(s: SessionRecord, now: number): NonNullable<StatusJson['session']> {
  return {
    kind: s.kind,
    issuer: s.issuer,
    client_id: s.clientId,
    identity: { ...s.identity, groups: [...s.identity.groups] },
    acr: s.acr,
    auth_time: s.authTime === null ? null : iso(s.authTime),
    expires_at: iso(s.expiresAt),
    expired: s.expiresAt <= now,
    refreshable: s.refreshToken !== null,
    token: s.bearer.masked(),
  };
}

export async function run(options: Options, ctx: Context): Promise<number | undefined> {
  const now = ctx.clock.now();
  let source: CredentialSource;
  try {
    source = await openCredentialSource(ctx, options);
  } catch (err) {
    if (options.json && err instanceof AuthError) {
      const doc: StatusJson = {
        server: null,
        signed_in: false,
        store: null,
        session: null,
        credentials: [],
        scheduled: [],
      };
      printJson(ctx.io, doc);
    }
    throw err;
  }
  const { server, store } = source;
  const session = decodeSession(await store.get(sessionKey(server)));

  const credentials: StatusJson['credentials'] = (await storedCredentials(source)).map((c) => {
    const end = Date.parse(c.expiresAt);
    return {
      role: c.role,
      request_id: c.requestId,
      expires_at: iso(end),
      expires_in_seconds: Math.max(0, Math.floor((end - now) / 1000)),
      expired: end <= now,
      token: c.token.masked(),
    };
  });
  credentials.sort((a, b) => a.role.localeCompare(b.role));

  const scheduled = (await scheduledGrants(source, now)).filter(
    (g) => !credentials.some((c) => c.request_id === g.request_id),
  );
  const doc: StatusJson = {
    server,
    signed_in: session !== undefined,
    store: { kind: store.kind, description: store.description },
    session: session ? sessionJson(session, now) : null,
    credentials,
    scheduled,
  };
  const notSignedIn = () =>
    new AuthError(`not signed in to ${server}`, {
      hint: `run \`jitctl login --server ${server}\``,
    });

  if (options.json) {
    printJson(ctx.io, doc);
    if (!session) throw notSignedIn();
    return 0;
  }
  if (!session) throw notSignedIn();

  const io = ctx.io;
  const lines: string[] = [];
  const field = (label: string, value: string) => lines.push(`${`${label}:`.padEnd(12)} ${value}`);
  field('Server', server);
  field(
    'Signed in',
    `${describeIdentity(session.identity)}${session.kind === 'federated' ? ' (pipeline)' : ''}`,
  );
  field('Groups', describeGroups(session.identity.groups));
  const strength = session.acr ? safe(session.acr) : 'unknown';
  field(
    'Sign-in',
    session.authTime === null ? strength : `${strength}, ${relative(session.authTime, now)}`,
  );
  const expiry =
    session.expiresAt > now
      ? `expires ${relative(session.expiresAt, now)}`
      : `expired ${relative(session.expiresAt, now)}`;
  const renew = session.refreshToken
    ? needsRefresh(session, now)
      ? ' (renewed on next use)'
      : ' (renewed automatically)'
    : session.expiresAt > now
      ? ''
      : ' (run `jitctl login`)';
  field('Token', `${session.bearer.masked()}, ${expiry}${renew}`);
  field('Store', safe(store.description));
  io.out(`${lines.join('\n')}\n`);

  if (scheduled.length > 0) {
    io.out('\nScheduled:\n');
    io.out(
      table(
        io,
        ['role', 'request', 'starts', 'until'],
        scheduled.map((g) => [
          safe(g.role),
          safe(g.request_id),
          `${clockTime(Date.parse(g.starts_at))} (${relative(Date.parse(g.starts_at), now)})`,
          clockTime(Date.parse(g.expires_at)),
        ]),
      ),
    );
    io.err(`  at the start: jitctl wait <request> fetches the credential\n`);
  }
  if (credentials.length === 0) {
    io.out('\nNo active credentials.\n');
    return 0;
  }
  io.out('\n');
  io.out(
    table(
      io,
      ['role', 'request', 'time left', 'token'],
      credentials.map((c) => [
        safe(c.role),
        safe(c.request_id),
        c.expired ? 'expired' : relative(Date.parse(c.expires_at), now).replace(/^in /, ''),
        c.token,
      ]),
    ),
  );
  return 0;
}
