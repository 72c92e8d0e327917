/**
 * The scripted tour (`npm run demo`): the whole story against a real
 * `jitctl server --dev`, told by running the real `jitctl` binary as three people.
 *
 *   alice (developer) signs in, lists her roles, asks for prod-deploy for 15m and waits;
 *   lee (lead) lists what waits for him and approves, with a fresh MFA sign-in;
 *   alice's waiting command receives the credential; `status` and `exec` use it;
 *   alice asks to extend it by 30m, lee approves the extension, her credential gets the new end;
 *   lee revokes the grant while alice's deploy runs: jitctl ends it and says who and why;
 *   alice asks for another role and lee reviews it on the broker's review page, in a browser;
 *   ada (auditor) verifies the audit log's hash chain.
 *
 * Each person has their own HOME and XDG directories and the encrypted file credential store.
 * The dev identity provider's sign-in pages are completed over HTTP the way each person would in
 * a browser (test/support/dev-browser.ts), with one-time codes computed from the TOTP secrets the
 * broker prints at start. Everything runs on 127.0.0.1 in a temporary directory, removed at the
 * end, also when a step fails (the tour then exits 1 and shows that step's output).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { styleText } from 'node:util';
import {
  completeDeviceLogin,
  deviceLoginUrl,
  type Person,
  reviewInBrowser,
} from '../test/support/dev-browser.js';
import { BIN, ensureBuilt } from './ensure-built.js';
import { homeEnv } from './home-env.js';

/** The whole tour must end well within a minute; a stuck step fails it instead of hanging. */
const STEP_TIMEOUT_MS = 30_000;

const color = process.stdout.isTTY === true && !process.env.NO_COLOR && !process.env.CI;
type Style = Parameters<typeof styleText>[0];
const paint = (format: Style, text: string) => (color ? styleText(format, text) : text);
/** Where the tour tells its story (stdout, unless {@link runTour} is given another writer). */
let write: (text: string) => void = (text) => void process.stdout.write(text);
const say = (text = '') => write(`${text}\n`);
/** How to run jitctl: this checkout's bin by default; an installed package's in its test. */
let jitctlCommand: string[] = [process.execPath, BIN];

class TourError extends Error {}

// ---- processes -----------------------------------------------------------------------------

interface Run {
  child: ChildProcess;
  output(): string;
  /** Resolves when the output matches, with the match; rejects when the process ends first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  done: Promise<{ code: number | null; output: string }>;
}

const running = new Set<ChildProcess>();

function start(args: string[], env: Record<string, string>, echo: boolean): Run {
  const child = spawn(jitctlCommand[0]!, [...jitctlCommand.slice(1), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let text = '';
  let pending = '';
  const waiters = new Set<() => void>();
  let closed = false;
  const onData = (chunk: Buffer) => {
    const s = chunk.toString();
    text += s;
    if (echo) {
      pending += s;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) say(paint('dim', '  │ ') + line);
    }
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const done = new Promise<{ code: number | null; output: string }>((resolveDone) => {
    child.on('close', (code) => {
      running.delete(child);
      closed = true;
      if (echo && pending) say(paint('dim', '  │ ') + pending);
      pending = '';
      for (const w of waiters) w();
      resolveDone({ code, output: text });
    });
  });
  return {
    child,
    output: () => text,
    done,
    waitFor(pattern, timeoutMs = STEP_TIMEOUT_MS) {
      return new Promise((res, rej) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new TourError(`timed out after ${timeoutMs / 1000} s waiting for ${pattern}`));
        }, timeoutMs);
        const check = () => {
          const m = pattern.exec(text);
          if (m) {
            clearTimeout(timer);
            waiters.delete(check);
            res(m);
          } else if (closed) {
            clearTimeout(timer);
            waiters.delete(check);
            rej(new TourError(`jitctl ${args[0]} ended before printing ${pattern}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

async function finished(run: Run, what: string, expectCode = 0): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => {
      run.child.kill('SIGKILL');
      rej(new TourError(`${what} did not finish within ${STEP_TIMEOUT_MS / 1000} s`));
    }, STEP_TIMEOUT_MS);
  });
  try {
    const { code, output } = await Promise.race([run.done, timeout]);
    if (code !== expectCode)
      throw new TourError(`${what} exited with ${code}, expected ${expectCode}`);
    return output;
  } finally {
    clearTimeout(timer);
  }
}

// ---- people --------------------------------------------------------------------------------

interface Actor {
  name: string;
  person: Person;
  env: Record<string, string>;
}

function home(root: string, name: string, person: Person): Actor {
  const dir = join(root, name);
  return {
    name,
    person,
    env: {
      ...homeEnv(dir),
      // No browser here: sign-ins use the device flow, whose page the tour completes.
      BROWSER: 'none',
      JITCTL_STORE: 'file',
      // The file store's passphrase, as a pipeline would pass it; each person has their own.
      JITCTL_FILE_PASSPHRASE: randomBytes(18).toString('base64url'),
    },
  };
}

function narrate(text: string): void {
  say();
  say(paint('bold', text));
}

function command(actor: Actor, args: string[]): void {
  const shown = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  say(`${paint('cyan', `${actor.name}$`)} jitctl ${shown.join(' ')}`);
}

function jitctl(actor: Actor, args: string[]): Run {
  command(actor, args);
  return start(args, actor.env, true);
}

/** Plays the person at the sign-in page the command printed (device flow). */
async function signIn(run: Run, actor: Actor, mfa: boolean): Promise<void> {
  await run.waitFor(/user_code=/);
  const url = deviceLoginUrl(run.output());
  if (!url) throw new TourError(`no sign-in URL in the output of ${actor.name}'s command`);
  await completeDeviceLogin(url, actor.person, { mfa });
  say(
    paint(
      'magenta',
      `  ↳ ${actor.name} opens that page and signs in with a password${mfa ? ' and a one-time code' : ''}`,
    ),
  );
}

// ---- the tour ------------------------------------------------------------------------------

async function tour(root: string): Promise<void> {
  narrate('Start the broker in development mode (SQLite, demo policy, built-in identity provider)');
  const dataDir = join(root, 'broker');
  say(`${paint('cyan', '$')} jitctl server --dev --listen 127.0.0.1:0 --data-dir ${dataDir}`);
  const server = start(
    ['server', '--dev', '--listen', '127.0.0.1:0', '--data-dir', dataDir],
    {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: root,
      LANG: 'C.UTF-8',
      NO_COLOR: '1',
      // The device flow's polling interval: 1 s instead of 5, so the tour does not idle.
      JITCTL_DEV_IDP_INTERVAL: '1',
    },
    false,
  );
  const url = (
    await server.waitFor(/sign in:\s+jitctl login --server (http:\/\/127\.0\.0\.1:\d+)/)
  )[1]!;
  const banner = server.output();
  for (const line of banner.split('\n')) {
    if (/broker|issuer|roles|review|demo users|^\s{4}\w+\s{2}/.test(line))
      say(paint('dim', '  │ ') + line);
  }

  // The demo people's passwords and TOTP secrets, as the banner printed them.
  const people = new Map<string, Person>();
  for (const m of banner.matchAll(/^\s{4}(\w+)\s+(\S+)\s+([A-Z2-7]{16,})\s/gm)) {
    people.set(m[1]!, { username: m[1]!, password: m[2]!, totpSecret: m[3]! });
  }
  const actor = (name: string) => {
    const person = people.get(name);
    if (!person) throw new TourError(`the broker's banner lists no ${name}`);
    return home(root, name, person);
  };
  const alice = actor('alice');
  const lee = actor('lee');
  const ada = actor('ada');
  const outputs: string[] = [banner];

  narrate('1. alice signs in (device code; she adds her one-time code)');
  const aliceLogin = jitctl(alice, ['login', '--server', url]);
  await signIn(aliceLogin, alice, true);
  outputs.push(await finished(aliceLogin, "alice's login"));

  narrate('2. alice looks up the roles she may ask for, then asks for prod-deploy for 15 minutes');
  outputs.push(await finished(jitctl(alice, ['roles']), 'jitctl roles'));
  const request = jitctl(alice, [
    'request',
    'prod-deploy',
    '--for',
    '15m',
    '--reason',
    'hotfix INC-4211',
  ]);
  const id = (await request.waitFor(/waiting for approval of (req_[A-Za-z0-9]+)/))[1]!;
  say(paint('magenta', `  ↳ ${id} is filed; alice's command keeps waiting in the background`));

  narrate(
    '3. lee signs in (with his one-time code: roles here ask for MFA) and lists what waits for his review',
  );
  const leeLogin = jitctl(lee, ['login', '--server', url]);
  await signIn(leeLogin, lee, true);
  outputs.push(await finished(leeLogin, "lee's login"));
  const list = jitctl(lee, ['list', '--reviewable', '--state', 'pending']);
  const listed = await finished(list, 'jitctl list');
  outputs.push(listed);
  if (!listed.includes(id)) throw new TourError(`lee's list does not show ${id}`);

  narrate('4. lee approves; reviews need MFA from the last 5 minutes (else jitctl steps up)');
  say(
    paint(
      'dim',
      '  (--yes because the tour has no terminal; on one, jitctl shows the request and asks)',
    ),
  );
  const approve = jitctl(lee, ['approve', id, '--comment', 'ship it', '--yes']);
  const asked = await Promise.race([
    approve.waitFor(/user_code=/).then(
      () => true,
      () => false,
    ),
    approve.done.then(() => false),
  ]);
  if (asked) await signIn(approve, lee, true);
  outputs.push(await finished(approve, 'jitctl approve'));

  narrate("5. alice's waiting command wakes up with the credential");
  const requested = await finished(request, 'jitctl request');
  outputs.push(requested);
  if (!/approved by Lee Lead · credential valid until \d\d:\d\d/.test(requested)) {
    throw new TourError('jitctl request did not report the approval');
  }

  narrate('6. alice looks at her session and credentials (secrets are only ever shown masked)');
  const status = jitctl(alice, ['status']);
  const statusOut = await finished(status, 'jitctl status');
  outputs.push(statusOut);
  if (!new RegExp(`prod-deploy\\s+${id}`).test(statusOut)) {
    throw new TourError('jitctl status does not list the prod-deploy credential');
  }

  narrate('7. alice runs a command with the credential in its environment (and nowhere else)');
  const show = [
    'const e = process.env, t = e.KUBE_TOKEN || "";',
    'console.log("JITCTL_ROLE=" + e.JITCTL_ROLE);',
    'console.log("JITCTL_EXPIRES_AT=" + e.JITCTL_EXPIRES_AT);',
    'console.log("KUBE_TOKEN: " + t.length + " characters, a JWT of " + t.split(".").length + " parts");',
  ].join(' ');
  const exec = jitctl(alice, ['exec', 'prod-deploy', '--', process.execPath, '-e', show]);
  const execOut = await finished(exec, 'jitctl exec');
  outputs.push(execOut);
  if (!execOut.includes('JITCTL_ROLE=prod-deploy') || !/KUBE_TOKEN: \d+ characters/.test(execOut)) {
    throw new TourError('the command did not see the credential');
  }

  narrate('8. alice needs longer: she asks to extend the grant by 30 minutes, and lee reviews it');
  const extend = jitctl(alice, [
    'extend',
    'prod-deploy',
    '--for',
    '30m',
    '--reason',
    'the rollout is slower than planned',
  ]);
  await extend.waitFor(/waiting for approval of the extension of req_/);
  say(paint('magenta', "  ↳ the grant keeps working until its current end; alice's command waits"));
  const approveExtension = jitctl(lee, ['approve', id, '--comment', 'take the time', '--yes']);
  // Lee signed in with MFA a moment ago; should the broker want it fresher, jitctl steps up again.
  const stepUp = approveExtension.waitFor(/user_code=/).then(
    () => signIn(approveExtension, lee, true),
    () => undefined,
  );
  outputs.push(await finished(approveExtension, 'jitctl approve (extension)'));
  await stepUp;
  const extended = await finished(extend, 'jitctl extend');
  outputs.push(extended);
  if (!/extended req_\w+ by 30m \(approved by Lee Lead\): valid until \d\d:\d\d/.test(extended)) {
    throw new TourError('jitctl extend did not report the new end');
  }
  const statusAfter = await finished(jitctl(alice, ['status']), 'jitctl status');
  outputs.push(statusAfter);

  narrate('9. alice starts a long deploy; lee revokes the grant: the running command is ended');
  const deploy = jitctl(alice, [
    'exec',
    'prod-deploy',
    '--',
    'sh',
    '-c',
    'echo "deploying… (this would take 5 minutes)"; sleep 300 & wait',
  ]);
  await deploy.waitFor(/deploying/);
  const revoke = jitctl(lee, ['revoke', id, '--reason', 'deploy window closed', '--yes']);
  outputs.push(await finished(revoke, 'jitctl revoke'));
  const ended = await finished(deploy, "alice's exec", 3);
  outputs.push(ended);
  if (
    !/the command was ended: the grant for prod-deploy .* was revoked by Lee Lead .*: deploy window closed/.test(
      ended,
    )
  ) {
    throw new TourError("alice's command did not report the revocation");
  }
  say(
    paint(
      'magenta',
      '  ↳ jitctl followed the grant while the command ran, and ended it (and everything it started) moments after the revocation',
    ),
  );
  const refused = jitctl(alice, ['credential', 'prod-deploy', '--kube']);
  outputs.push(await finished(refused, 'jitctl credential --kube', 3));

  narrate('10. alice asks for staging-admin; lee reviews it in a browser, from the link she got');
  const browserRequest = jitctl(alice, [
    'request',
    'staging-admin',
    '--for',
    '30m',
    '--reason',
    'rotate the staging certificates',
  ]);
  const link = (await browserRequest.waitFor(/review page for the approvers: (\S+)/))[1]!;
  // The page is completed over HTTP as a browser would (no browser needed to run the tour).
  const reviewed = await reviewInBrowser(link, lee.person, 'approve', {
    mfa: false,
    comment: 'go ahead',
  });
  say(
    paint(
      'magenta',
      `  ↳ lee opens ${link}, signs in with his password and sees the request as \`jitctl approve\` shows it`,
    ),
  );
  say(
    paint(
      'magenta',
      `  ↳ he presses Approve; ${reviewed.steppedUp ? 'the page sends him back for his one-time code, then asks him to confirm' : 'his sign-in is fresh, so it is recorded at once'}`,
    ),
  );
  const verdict = /Approved\. Approved by Lee Lead at \d\d:\d\d UTC[^.]*\./.exec(reviewed.text);
  if (!verdict)
    throw new TourError(
      `the review page did not show the approval: ${reviewed.text.slice(0, 300)}`,
    );
  say(paint('magenta', `  ↳ the page now says: ${verdict[0]}`));
  outputs.push(await finished(browserRequest, 'jitctl request staging-admin'));
  say(
    paint(
      'dim',
      '  (to try it yourself: run `jitctl server --dev`, file a request, and open the printed link in a browser; the demo users and their TOTP secrets are in the banner)',
    ),
  );

  narrate("11. ada, an auditor, checks the audit log's hash chain");
  const adaLogin = jitctl(ada, ['login', '--server', url]);
  await signIn(adaLogin, ada, true);
  outputs.push(await finished(adaLogin, "ada's login"));
  const verify = jitctl(ada, ['audit', 'verify']);
  const verified = await finished(verify, 'jitctl audit verify');
  outputs.push(verified);
  if (!/^ok: \d+ events/m.test(verified)) throw new TourError('the audit log did not verify');

  // The promise of the README's security model: no secret in any output. A JWT starts with "eyJ" ({"…).
  const leaked = outputs.find((o) => /eyJ[\w-]{10,}\.[\w-]{10,}/.test(o));
  if (leaked) throw new TourError('a token appeared in the output');

  server.child.kill('SIGTERM');
  await finished(server, 'the broker');
}

/**
 * The whole tour with `jitctl` run as `command` (e.g. an installed package's bin), the story
 * written to `out`: 0 when every step passed, 1 otherwise. The test of the npm package
 * (test/package.test.ts) runs it against the package installed from its tarball.
 */
export async function runTour(
  command: string[],
  out: (text: string) => void = (t) => void process.stdout.write(t),
): Promise<number> {
  jitctlCommand = command;
  write = out;
  const started = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'jitctl-tour-'));
  let failed = false;
  const onSignal = () => {
    failed = true;
    for (const c of running) c.kill('SIGKILL');
  };
  process.once('SIGINT', onSignal);
  try {
    await tour(root);
    say();
    say(paint('green', `✔ the tour is complete (${((Date.now() - started) / 1000).toFixed(1)} s)`));
  } catch (err) {
    failed = true;
    say();
    say(paint('red', `✖ the tour failed: ${(err as Error).message}`));
    if (!(err instanceof TourError) && (err as Error).stack)
      say(paint('dim', (err as Error).stack!));
  } finally {
    for (const c of running) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
  }
  return failed ? 1 : 0;
}

// `npm run demo`: this checkout, built first when needed.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  ensureBuilt();
  process.exitCode = await runTour([process.execPath, BIN]);
}
