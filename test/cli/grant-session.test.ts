import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { startGrantSession } from '../../src/cli/grant-session.js';
import { testIO } from '../../src/cli/io.js';
import { memoryStore } from '../../src/credentials/memory-store.js';
import { credentialKey, decodeCredential } from '../../src/credentials/records.js';
import type { RunningCommand } from '../../src/exec/run-command.js';
import { seedCredential, startCredentialBroker, waitFor } from '../credentials/fixtures.js';
import { http, rawSql, type TestBroker } from '../support/broker.js';
import { testHome } from '../support/cli.js';

/**
 * Following a grant while a command runs (src/cli/grant-session.ts), against a real broker: the
 * long poll learns a new end (an extension: the expiry moves, the shell's prompt is told) and a
 * revocation (the command is ended with who and why). The command itself is a handle that
 * records what it is asked to do; run-command.test.ts and the binary's tests cover the rest.
 */

let b: TestBroker;
beforeAll(async () => {
  b = await startCredentialBroker();
});
afterAll(async () => b?.close());

function handle() {
  const moved: number[] = [];
  const ended: string[] = [];
  const running: RunningCommand = {
    pid: 1,
    tree: { rootPid: 1, marker: 'x', exclude: [], since: undefined },
    end: async (reason) => {
      ended.push(reason);
    },
    moveExpiry: (at) => moved.push(at),
  };
  return { running, moved, ended };
}

describe('following the grant', () => {
  it('moves the end when the broker says the grant ends later, and ends the command when revoked', async () => {
    const store = memoryStore();
    const seeded = await seedCredential(store, { role: 'prod', broker: b });
    const record = decodeCredential(await store.get(credentialKey(b.url, 'prod')))!;
    const h = testHome();
    const io = testIO();
    const ctx = createContext({ io, env: h.env });
    const ends: number[] = [];
    const session = startGrantSession(ctx, {
      record,
      server: b.url,
      store,
      kind: 'exec',
      argv: ['deploy'],
      onNewEnd: (end) => ends.push(end),
      followWaitMs: 1_000,
    });
    const cmd = handle();
    const stop = session.watch(cmd.running);
    try {
      // An extension as the broker records it (the lifecycle's extend moves expires_at).
      const later = Date.parse(seeded.grantExpiresAt) + 30 * 60_000;
      await rawSql(
        b.dbUrl,
        `update requests set expires_at = ${later} where id = '${seeded.requestId}'`,
      );
      await waitFor(() => (cmd.moved.length > 0 ? true : undefined), 'the new end', 10_000);
      expect(cmd.moved).toEqual([later]);
      expect(ends).toEqual([later]);
      expect(io.stderrText()).toMatch(/jitctl: the grant for prod now ends at \d\d:\d\d\n/);
      const lee = await b.issuer.token({ sub: 'lee-sub', name: 'Lee', groups: ['leads'] });
      await http(b.url, 'POST', `/v1/requests/${seeded.requestId}/revoke`, {
        token: lee,
        body: { reason: 'over' },
      });
      await waitFor(() => (cmd.ended.length > 0 ? true : undefined), 'the end', 10_000);
      expect(cmd.ended[0]).toMatch(
        new RegExp(
          `^the grant for prod \\(${seeded.requestId}\\) was revoked by Lee at \\d\\d:\\d\\d \\([^)]+\\): over$`,
        ),
      );
    } finally {
      stop();
      h.cleanup();
    }
  });
});
