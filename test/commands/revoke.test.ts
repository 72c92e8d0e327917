import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../src/api/schemas.js';
import { Secret } from '../../src/api/secret.js';
import { ExitCode, type JitError } from '../../src/cli/errors.js';
import { run as cancel } from '../../src/commands/cancel.js';
import { run as request } from '../../src/commands/request.js';
import { run as revoke } from '../../src/commands/revoke.js';
import {
  credentialKey,
  decodeCredential,
  encodeCredential,
} from '../../src/credentials/records.js';
import { atTerminal } from '../e2e/in-process.js';
import { actor, file, POLICY, people } from '../server/helpers.js';
import { rawSql, startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * `jitctl revoke` and `jitctl cancel` in-process against a real broker: the confirmation at a
 * terminal, which stored credential is removed (only the revoked request's), a reviewer revoking,
 * and the states in which each is refused.
 */

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker({ policy: POLICY });
});
afterAll(async () => {
  await broker?.close();
});

const stateOf = async (id: string) =>
  (await actor(broker, people.lee).get<AccessRequest>(`/v1/requests/${id}`)).body.state;

describe('jitctl revoke', () => {
  it('asks at a terminal; "no" leaves it approved and the credential stored', async () => {
    const alice = await atTerminal(broker, people.alice);
    expect(await request({ role: 'self-service', reason: 'read' }, alice.ctx)).toBe(0);
    const key = credentialKey(broker.url, 'self-service');
    const id = decodeCredential(await (await alice.store()).get(key))!.requestId;

    alice.answers.push(false);
    expect(await revoke({ id }, alice.ctx)).toBe(ExitCode.Error);
    expect(alice.asked.at(-1)).toBe(`Revoke ${id}: Alice (alice-sub) loses self-service now?`);
    expect(await stateOf(id)).toBe('approved');
    expect(await (await alice.store()).get(key)).toBeDefined();

    alice.answers.push(true);
    expect(await revoke({ id }, alice.ctx)).toBe(0);
    expect(await stateOf(id)).toBe('revoked');
    expect(await (await alice.store()).get(key)).toBeUndefined();
    expect(alice.io.stderrText()).toContain('removed the stored credential for self-service');
    alice.home.cleanup();
  });

  it('keeps a stored credential of another request for the same role', async () => {
    const alice = await atTerminal(broker, people.alice);
    const old = await file(actor(broker, people.alice), { role: 'self-service' });
    const newer = await file(actor(broker, people.alice), { role: 'self-service' });
    const key = credentialKey(broker.url, 'self-service');
    await (await alice.store()).set(
      key,
      encodeCredential({
        role: 'self-service',
        requestId: newer.id,
        token: new Secret('a-stored-credential-token-value-1234'),
        expiresAt: new Date(Date.now() + 600_000).toISOString(),
        env: {},
      }),
    );
    expect(await revoke({ id: old.id, yes: true }, alice.ctx)).toBe(0);
    expect(decodeCredential(await (await alice.store()).get(key))?.requestId).toBe(newer.id);
    expect(alice.io.stderrText()).not.toContain('removed the stored credential');
    alice.home.cleanup();
  });

  it('an approver of the role may revoke someone else’s request; a developer may not', async () => {
    const r = await file(actor(broker, people.alice), { role: 'self-service' });
    const bob = await atTerminal(broker, people.bob);
    const err = (await revoke({ id: r.id, yes: true }, bob.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(err.exitCode).toBe(ExitCode.Denied);
    expect(err.message).toContain(`you may not see request ${r.id}`);
    const lee = await atTerminal(broker, people.lee);
    expect(await revoke({ id: r.id, yes: true, json: true }, lee.ctx)).toBe(0);
    expect(JSON.parse(lee.io.stdoutText())).toMatchObject({ id: r.id, state: 'revoked' });
    // Revoking again is harmless: no question, the same answer.
    expect(await revoke({ id: r.id }, lee.ctx)).toBe(0);
    expect(lee.asked).toEqual([]);
    bob.home.cleanup();
    lee.home.cleanup();
  });
});

describe('jitctl revoke: the reason, and what it says', () => {
  it('sends --reason, and says where the revocation takes effect and until when', async () => {
    const r = await file(actor(broker, people.alice), { role: 'self-service' });
    const lee = await atTerminal(broker, people.lee);
    expect(await revoke({ id: r.id, yes: true, reason: 'INC-4211 closed' }, lee.ctx)).toBe(0);
    const rows = (await rawSql(
      broker.dbUrl,
      `select data from audit_events where request_id = '${r.id}' and type = 'request.revoked'`,
    )) as { data: string }[];
    expect(JSON.parse(rows[0]!.data)).toMatchObject({ reason: 'INC-4211 closed' });
    const said = lee.io.stderrText();
    expect(said).toContain('no credential is minted for it again');
    expect(said).toContain(
      "the requester's jitctl refuses it and ends the commands running under it; services that introspect or follow /v1/revocations refuse it now",
    );
    // self-service: a 10m window with the 15m default lifetime, so the window's end bounds it.
    expect(said).toMatch(
      /services that only check signatures accept a credential already issued until it expires, by \d\d:\d\d at the latest/,
    );
    lee.home.cleanup();
  });

  it('refuses a reason longer than the broker takes, before asking anything', async () => {
    const lee = await atTerminal(broker, people.lee);
    const err = (await revoke({ id: 'req_x', yes: true, reason: 'x'.repeat(1001) }, lee.ctx).catch(
      (e: unknown) => e,
    )) as JitError;
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toBe('--reason is 1001 characters; at most 1000 fit');
    lee.home.cleanup();
  });

  it('--help says the truth about where and how fast', async () => {
    const { runCli, testHome } = await import('../support/cli.js');
    const h = testHome();
    try {
      const r = await runCli(['revoke', '--help'], { env: h.env });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('--reason <text>');
      expect(r.stdout).toContain('jitctl exec/shell running under the grant   within a second');
      expect(r.stdout).toContain(
        'services that introspect (RFC 7662)         at their next question',
      );
      expect(r.stdout).toContain("role's credential.ttl (15m unless the role says)");
      expect(r.stdout).not.toContain('stops working for jitctl');
    } finally {
      h.cleanup();
    }
  });
});

describe('jitctl cancel', () => {
  it('withdraws a pending request; an approved one is for revoke (exit 3, says so)', async () => {
    const pending = await file(actor(broker, people.alice), { role: 'two-person' });
    const alice = await atTerminal(broker, people.alice);
    expect(await cancel({ id: pending.id, json: true }, alice.ctx)).toBe(0);
    expect(JSON.parse(alice.io.stdoutText())).toMatchObject({ id: pending.id, state: 'cancelled' });
    expect(await stateOf(pending.id)).toBe('cancelled');

    const approved = await file(actor(broker, people.alice), { role: 'self-service' });
    const err = (await cancel({ id: approved.id }, alice.ctx).catch((e: unknown) => e)) as JitError;
    expect(err.exitCode).toBe(ExitCode.Denied);
    expect(err.message).toBe(
      `request ${approved.id} is approved; only pending requests can be cancelled`,
    );
    expect(err.hint).toBe('an approved request is ended with `jitctl revoke`');
    alice.home.cleanup();
  });
});
