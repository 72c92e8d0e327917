import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import { handOver } from '../cli/hand-over.js';
import { clockTime, printJson, relative, safe } from '../cli/output.js';
import {
  activeCredential,
  credentialVariables,
  openCredentialSource,
  rfc3339,
} from '../credentials/active.js';
import { grantEndOf } from '../credentials/records.js';

/**
 * `jitctl credential [role] [--json | --kube | --env]`: the stored credential for other tools.
 * `--kube` makes jitctl a kubectl exec credential plugin (client.authentication.k8s.io); the
 * errors go to stderr with a non-zero exit, which kubectl shows to the user.
 */

export interface Options {
  role?: string | undefined;
  server?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
  kube?: boolean | undefined;
  env?: boolean | undefined;
  force?: boolean | undefined;
}

/** The ExecCredential versions kubectl speaks; v1 since Kubernetes 1.22, v1beta1 before. */
const KUBE_API_VERSIONS = [
  'client.authentication.k8s.io/v1',
  'client.authentication.k8s.io/v1beta1',
] as const;

export async function run(options: Options, ctx: Context): Promise<number> {
  if (options.force && !options.env) {
    throw new UsageError('--force goes with --env');
  }
  // Checked before the store is opened: no passphrase is asked for output that is refused.
  if (options.env && ctx.io.stdoutIsTTY && !options.force) {
    throw new UsageError(
      'refusing to print the credential to a terminal: it would stay in the scrollback',
      { hint: 'use it as eval "$(jitctl credential --env)", or pass --force' },
    );
  }
  const apiVersion = options.kube ? kubeApiVersion(ctx.env.KUBERNETES_EXEC_INFO) : undefined;

  const source = await openCredentialSource(ctx, options);
  const stored = await activeCredential(ctx, source, options.role, (r) => `jitctl credential ${r}`);
  // One question to the broker: a revoked grant is refused (exit 3), a credential near its own
  // expiry is replaced by a fresh one while the grant lasts (src/cli/hand-over.ts).
  const record = await handOver(ctx, source, stored, { purpose: 'tool' });
  const expires = Date.parse(record.expiresAt);
  const grantEnd = grantEndOf(record);

  if (apiVersion) {
    printJson(ctx.io, {
      apiVersion,
      kind: 'ExecCredential',
      status: { token: record.token.reveal(), expirationTimestamp: rfc3339(expires) },
    });
    return 0;
  }
  if (options.json) {
    printJson(ctx.io, {
      token: record.token.reveal(),
      expires_at: rfc3339(expires),
      grant_expires_at: rfc3339(grantEnd),
      role: record.role,
      request_id: record.requestId,
      server: source.server,
    });
    return 0;
  }
  if (options.env) {
    const { vars, skipped } = credentialVariables(record, source.server, { session: false });
    if (skipped.length > 0) {
      ctx.io.err(
        `warning: ignored variables from the role's env: ${skipped.map((s) => safe(s)).join(', ')}\n`,
      );
    }
    ctx.io.out(
      Object.entries(vars)
        .map(([name, value]) => `export ${name}=${shellQuote(value)}\n`)
        .join(''),
    );
    return 0;
  }

  const now = ctx.clock.now();
  const names = Object.keys(record.env);
  const line = (label: string, value: string) => `${`${label}:`.padEnd(12)} ${value}\n`;
  ctx.io.out(
    line('role', safe(record.role)) +
      line('server', safe(source.server)) +
      line('request', safe(record.requestId)) +
      line('expires', `${clockTime(expires)} (${relative(expires, now)}), ${rfc3339(expires)}`) +
      (grantEnd - expires >= 1000
        ? line(
            'grant ends',
            `${clockTime(grantEnd)} (${relative(grantEnd, now)}); a fresh credential is minted until then`,
          )
        : '') +
      line('variables', names.length > 0 ? names.map((n) => safe(n)).join(', ') : '(none)'),
  );
  return 0;
}

/** The apiVersion kubectl asks for in KUBERNETES_EXEC_INFO; v1 when it says nothing. */
export function kubeApiVersion(info: string | undefined): string {
  if (info === undefined || info.trim() === '') return KUBE_API_VERSIONS[0];
  let apiVersion: unknown;
  try {
    apiVersion = (JSON.parse(info) as { apiVersion?: unknown } | null)?.apiVersion;
  } catch {
    throw new UsageError('KUBERNETES_EXEC_INFO is not valid JSON', {
      hint: 'kubectl sets it for exec plugins; unset it when running jitctl yourself',
    });
  }
  if (apiVersion === undefined) return KUBE_API_VERSIONS[0];
  if (
    typeof apiVersion === 'string' &&
    (KUBE_API_VERSIONS as readonly string[]).includes(apiVersion)
  )
    return apiVersion;
  throw new UsageError(
    `kubectl asked for ExecCredential ${safe(String(apiVersion))}; jitctl answers ${KUBE_API_VERSIONS.join(' and ')}`,
    { hint: 'set apiVersion: client.authentication.k8s.io/v1 in the kubeconfig exec stanza' },
  );
}

/** POSIX single quotes: nothing inside is special, and a quote is closed, escaped and reopened. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
