import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  atPty,
  type DevBroker,
  SCRIPT,
  signIn,
  startDevBroker,
  type User,
  user,
} from './support.js';

/**
 * The commands at a real terminal: the binary runs under `script` (util-linux), which gives it a
 * pseudo-terminal, so ora draws its spinner, @inquirer/prompts asks its questions, and Ctrl-C is
 * the ^C character typed into the terminal, turned into SIGINT by the terminal's line discipline.
 * What the person types is written to the terminal; what they see is read back from it.
 */

// Real processes on a machine that may be busy: each step has its own generous wait, and a test
// of several steps gets the sum of them.
vi.setConfig({ testTimeout: 180_000 });

let broker: DevBroker;
let alice: User;
let lee: User;

beforeAll(async () => {
  if (!existsSync(SCRIPT)) throw new Error('these tests need `script` (apt-get install bsdutils)');
  broker = await startDevBroker();
  alice = user('alice', broker);
  lee = user('lee', broker);
  await Promise.all([signIn(alice, broker, true), signIn(lee, broker, true)]);
}, 120_000);

afterAll(async () => {
  await broker?.cleanup();
  alice?.home.cleanup();
  lee?.home.cleanup();
});

/** `jitctl args…` at a terminal, as `u`. */
const atTerminal = (u: User, args: string[]) => atPty(u.env, args);

/** The terminal's text without escape sequences (what a person reads). */
const plain = (s: string) =>
  s
    .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\u001b\][^\u0007]*\u0007/g, '')
    .replace(/\r/g, '');

describe('at a terminal', () => {
  it('request: a spinner while waiting; Ctrl-C stops it, says how to resume, exits 130', async () => {
    const t = atTerminal(alice, ['request', 'staging-admin', '--reason', 'at a terminal']);
    await t.until(/waiting for approval of req_\w+/);
    const id = /waiting for approval of (req_\w+)/.exec(t.screen())![1]!;
    // ora's frames: the line is redrawn in place (carriage return / erase line), in colour.
    await t.until(
      /\u001b\[\d*G[\s\S]*waiting for approval[\s\S]*\u001b\[\d*G[\s\S]*waiting for approval/,
    );
    t.type('\u0003');
    expect(await t.done).toBe(130);
    const seen = plain(t.screen());
    expect(seen).toContain(`error: stopped waiting; ${id} is still filed`);
    expect(seen).toContain(`hint: resume with \`jitctl wait ${id}\``);
    const show = await alice.run(['show', id, '--json']);
    expect(JSON.parse(show.stdout).state).toBe('pending');
  }, 60_000);

  it('request: asks for the reason the role requires; approve: shows the request and asks', async () => {
    const req = atTerminal(alice, ['request', 'staging-admin']);
    await req.until(/Reason \(shown to the reviewers\)/);
    req.type('typed at the prompt\r');
    await req.until(/waiting for approval of req_\w+/);
    const id = /waiting for approval of (req_\w+)/.exec(req.screen())![1]!;

    const no = atTerminal(lee, ['approve', id]);
    await no.until(/Approve req_\w+: Alice Developer \(alice\) asks for staging-admin for 1h\?/);
    expect(plain(no.screen())).toContain('Reason       typed at the prompt');
    no.type('n\r');
    await no.until(/nothing was sent/);
    expect(await no.done).toBe(1);

    const yes = atTerminal(lee, ['approve', id, '--comment', 'typed yes']);
    await yes.until(/Approve req_\w+/);
    yes.type('y\r');
    expect(await yes.done).toBe(0);
    expect(plain(yes.screen())).toMatch(
      /✔ approved req_\w+: Alice Developer \(alice\) has staging-admin until/,
    );

    expect(await req.done).toBe(0);
    expect(plain(req.screen())).toMatch(
      /✔ approved by Lee Lead · credential valid until \d\d:\d\d \(1h\)/,
    );
    expect((await alice.credential('staging-admin'))?.requestId).toBe(id);
  }, 120_000);
});
