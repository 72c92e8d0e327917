import { join } from 'node:path';
import type { CredentialResponse } from '../../src/api/schemas.js';
import { Secret } from '../../src/api/secret.js';
import { fileStore } from '../../src/credentials/file-store.js';
import {
  type CredentialRecord,
  credentialKey,
  credentialRecordOf,
  encodeCredential,
} from '../../src/credentials/records.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import { http, startTestBroker, storeSession, type TestBroker } from '../support/broker.js';
import type { TestHome } from '../support/cli.js';
import type { Person } from '../support/test-issuer.js';

/**
 * Puts elevated credentials where a spawned jitctl finds them: the encrypted file store of a
 * test home (the real files, the real passphrase check), as `jitctl request` will once it has
 * waited for approval. Tests of exec, shell and credential start from here.
 *
 * jitctl confirms a grant with its broker before it hands a credential over, so a credential is
 * seeded from a real grant on a real broker ({@link startCredentialBroker}, in the test's process)
 * with the session of the person it belongs to; only an already-ended one is seeded without it
 * (jitctl refuses it before asking anyone).
 */

/** A broker nobody runs: credentials of it are refused (unreachable) unless ended already. */
export const TEST_SERVER = 'https://jit.example.test';
export const TEST_PASSPHRASE = 'test file-store passphrase';

/** The person every seeded credential belongs to. */
export const HOLDER: Person = {
  sub: 'alice-sub',
  name: 'Alice',
  email: 'alice@example.com',
  groups: ['developers'],
};

/** One role that anyone may take at once, for up to a day: seeded credentials come from it. */
export const FIXTURE_POLICY = `
roles:
  any:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 0
    max_duration: 1d
    credential:
      audience: https://fixture.example.com
      env: { KUBE_TOKEN: "{{token}}" }
`;

/** A broker for seeded credentials (SQLite, the real test issuer); close it in afterAll. */
export function startCredentialBroker(policy = FIXTURE_POLICY): Promise<TestBroker> {
  return startTestBroker({ policy });
}

/** The environment for a CLI that reads the test home's file store. */
export function fileStoreEnv(home: TestHome, server = TEST_SERVER): Record<string, string> {
  return {
    ...home.env,
    JITCTL_SERVER: server,
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: TEST_PASSPHRASE,
  };
}

export function homeStore(home: TestHome): CredentialStore {
  return fileStore({
    dir: join(home.env.XDG_DATA_HOME!, 'jitctl', 'store'),
    passphrase: async () => new Secret(TEST_PASSPHRASE),
  });
}

export interface SeededCredential {
  role: string;
  requestId: string;
  token: string;
  /** The token's expiry, RFC 3339. */
  expiresAt: string;
  /** The grant's end, RFC 3339. */
  grantExpiresAt: string;
}

/**
 * Stores a credential of `role` in `store`. With `broker`: a real grant of the fixture's role
 * (`approved` at once, for `validMs` rounded up to the second, filed as {@link HOLDER}), its
 * credential minted and kept under `role` with `env` (default `KUBE_TOKEN`), and the holder's
 * session. Without a broker only ended credentials can be seeded (`validMs` ≤ 0).
 */
export async function seedCredential(
  store: CredentialStore,
  opts: {
    role: string;
    /** Validity from now in ms; negative for an ended grant. */
    validMs?: number;
    env?: Record<string, string>;
    broker?: TestBroker;
    /** Another role of the broker's policy than the fixture's `any`. */
    policyRole?: string;
    /** Without a broker: the server whose key it is kept under (default TEST_SERVER). */
    server?: string;
  },
): Promise<SeededCredential> {
  const validMs = opts.validMs ?? 15 * 60_000;
  let record: CredentialRecord;
  let server = opts.server ?? TEST_SERVER;
  if (opts.broker && validMs > 0) {
    const b = opts.broker;
    server = b.url;
    const token = await b.issuer.token(HOLDER);
    const filed = await http<{ id: string; state: string }>(b.url, 'POST', '/v1/requests', {
      token,
      body: { role: opts.policyRole ?? 'any', duration: `${Math.ceil(validMs / 1000)}s` },
    });
    if (filed.status !== 201 || filed.body.state !== 'approved')
      throw new Error(`seeding: filing answered ${filed.status}: ${filed.text}`);
    const minted = await http<CredentialResponse>(
      b.url,
      'POST',
      `/v1/requests/${filed.body.id}/credential`,
      { token, body: {} },
    );
    if (minted.status !== 200) throw new Error(`seeding: minting answered ${minted.status}`);
    record = credentialRecordOf(opts.role, filed.body.id, minted.body, Date.now());
    if (opts.env)
      record.env = Object.fromEntries(Object.entries(opts.env).map(([k, v]) => [k, new Secret(v)]));
    await storeSession(store, b, HOLDER);
  } else {
    if (validMs > 0) throw new Error('seeding an active credential needs a broker');
    const token = `eyJ.test-token-${opts.role}-${Math.random().toString(36).slice(2)}.sig`;
    const expiresAt = new Date(Date.now() + validMs).toISOString();
    record = {
      role: opts.role,
      requestId: `req_${opts.role.replace(/[^a-z0-9]/gi, '')}${Math.random().toString(36).slice(2, 6)}`,
      token: new Secret(token),
      expiresAt,
      grantExpiresAt: expiresAt,
      env: Object.fromEntries(
        Object.entries(opts.env ?? { KUBE_TOKEN: token }).map(([k, v]) => [k, new Secret(v)]),
      ),
    };
  }
  await store.set(credentialKey(server, opts.role), encodeCredential(record));
  return {
    role: opts.role,
    requestId: record.requestId,
    token: record.token.reveal(),
    expiresAt: record.expiresAt,
    grantExpiresAt: record.grantExpiresAt ?? record.expiresAt,
  };
}

/** Polls `probe` until it returns a value (generous default: the machine may be busy). */
export async function waitFor<T>(
  probe: () => T | undefined,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** POSIX single quotes, for command lines handed to `script -c`. */
export function sh(...words: string[]): string {
  return words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(' ');
}
