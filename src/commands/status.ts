import { describeGroups, describeIdentity } from '../auth/describe.js';
import { needsRefresh } from '../auth/expiry.js';
import type { Context } from '../cli/context.js';
import { AuthError } from '../cli/errors.js';
import { revokedLine } from '../cli/hand-over.js';
import { clockTime, printJson, relative, safe, table } from '../cli/output.js';
import { queuedUses } from '../cli/use-queue.js';
import { checkGrant, type GrantAnswer } from '../client/grant-check.js';
import {
  type CredentialSource,
  openCredentialSource,
  storedCredentials,
} from '../credentials/active.js';
import {
  type CredentialRecord,
  credentialKey,
  decodeCredential,
  decodeScheduled,
  decodeSession,
  grantEndOf,
  roleOfScheduledKey,
  type SessionRecord,
  serverPrefix,
  sessionKey,
} from '../credentials/records.js';

/**
 * `jitctl status [--json] [--offline]`: who you are at the broker, your session and your
 * credentials. The session comes from the credential store alone (no OIDC library); the grants of
 * the credentials not yet ended are confirmed with the broker in one small request each, in
 * parallel and briefly (src/client/grant-check.ts), so a revoked one shows as revoked, with who
 * revoked it, and is dropped from the store. `--offline` reads the store only: what shell prompts
 * should run. Secrets appear only masked.
 */
export interface Options {
  server?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
  /** Read the store only: no question to the broker. */
  offline?: boolean | undefined;
}

/** How long status waits for the broker's word on the grants, all together. */
const STATUS_CHECK_MS = 2_000;

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
    /** The credential's own expiry (the role's credential.ttl). */
    expires_at: string;
    expires_in_seconds: number;
    expired: boolean;
    /** The grant's end: a fresh credential is minted until then. */
    grant_expires_at: string;
    /**
     * The grant as the broker says (`active`, `revoked`, `expired`, …); `ended` when it ended by
     * the store's own clock; `unchecked` with --offline; `unconfirmed` when the broker did not
     * answer.
     */
    grant: string;
    revoked: {
      at: string;
      by: { iss: string; sub: string; name: string | null } | null;
      reason: string | null;
    } | null;
    /** Dropped from the store just now (its grant was revoked). */
    removed: boolean;
    token: string;
  }>;
  /** Grants approved to start later (`jitctl request --at`), as this machine last saw them. */
  scheduled: Array<{ role: string; request_id: string; starts_at: string; expires_at: string }>;
  /** Reports of commands that could not reach the broker yet (sent by the next exec or shell). */
  queued_reports: number;
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
        queued_reports: 0,
      };
      printJson(ctx.io, doc);
    }
    throw err;
  }
  const { server, store } = source;
  const session = decodeSession(await store.get(sessionKey(server)));

  const records = await storedCredentials(source);
  const grants = options.offline
    ? new Map<string, GrantAnswer>()
    : await checkGrants(server, records, now);
  const credentials: StatusJson['credentials'] = [];
  for (const c of records) {
    const end = Date.parse(c.expiresAt);
    const grantEnd = grantEndOf(c);
    const answer = grants.get(c.requestId);
    const status = answer?.kind === 'status' ? answer.status : undefined;
    const revoked = status?.state === 'revoked' ? (status.revoked ?? null) : null;
    let removed = false;
    if (revoked) {
      // A revoked grant's credential is of no use to anyone: it leaves the store.
      const key = credentialKey(server, c.role);
      if (decodeCredential(await store.get(key))?.requestId === c.requestId) {
        await store.delete(key);
        removed = true;
      }
    }
    const shownEnd = status ? Date.parse(status.expires_at) : grantEnd;
    credentials.push({
      role: c.role,
      request_id: c.requestId,
      expires_at: iso(end),
      expires_in_seconds: Math.max(0, Math.floor((end - now) / 1000)),
      expired: end <= now,
      grant_expires_at: iso(shownEnd),
      grant: status
        ? status.state
        : grantEnd <= now
          ? 'ended'
          : options.offline
            ? 'unchecked'
            : 'unconfirmed',
      revoked,
      removed,
      token: c.token.masked(),
    });
  }
  credentials.sort((a, b) => a.role.localeCompare(b.role));
  const unreachable = [...grants.values()].find(
    (a): a is Extract<GrantAnswer, { kind: 'unavailable' }> => a.kind === 'unavailable',
  );
  const queued = (await queuedUses(ctx, server)).length;

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
    queued_reports: queued,
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
  } else {
    io.out('\n');
    io.out(
      table(
        io,
        ['role', 'request', 'grant', 'token'],
        credentials.map((c) => [safe(c.role), safe(c.request_id), grantColumn(c, now), c.token]),
      ),
    );
    for (const c of credentials) {
      if (!c.revoked) continue;
      io.out(
        `  ${revokedLine(c.role, c.request_id, c.revoked, now)}` +
          `${c.removed ? '; its credential was removed from the store' : ''}\n`,
      );
    }
    if (unreachable)
      io.out(
        `  (the broker did not answer (${safe(unreachable.reason)}); grants shown as the store last knew them)\n`,
      );
  }
  if (queued > 0)
    io.out(
      `\n${queued === 1 ? '1 report' : `${queued} reports`} of commands run under a grant wait to be sent to the broker (by your next jitctl exec or shell)\n`,
    );
  return 0;
}

/** The grant column: time left, `revoked` or `expired`; `(unconfirmed)` when the broker did not say. */
function grantColumn(c: StatusJson['credentials'][number], now: number): string {
  if (c.revoked) return 'revoked';
  if (c.grant === 'ended' || c.grant === 'expired') return 'expired';
  if (!['active', 'unconfirmed', 'unchecked'].includes(c.grant)) return safe(c.grant);
  const left = relative(Date.parse(c.grant_expires_at), now).replace(/^in /, '');
  return c.grant === 'unconfirmed' ? `${left} (unconfirmed)` : left;
}

/** The broker's word on each grant not yet ended, asked all at once and briefly. */
async function checkGrants(
  server: string,
  records: CredentialRecord[],
  now: number,
): Promise<Map<string, GrantAnswer>> {
  const live = records.filter((r) => grantEndOf(r) > now);
  const answers = await Promise.all(
    live.map((r) =>
      checkGrant({ server, token: r.token.reveal(), timeoutMs: STATUS_CHECK_MS }).then(
        (a) => [r.requestId, a] as const,
      ),
    ),
  );
  return new Map(answers);
}
