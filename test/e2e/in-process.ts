import { type Context, createContext } from '../../src/cli/context.js';
import { type TestIO, testIO } from '../../src/cli/io.js';
import type { Prompter } from '../../src/cli/prompt.js';
import { openStore } from '../../src/credentials/index.js';
import type { CredentialStore } from '../../src/credentials/store.js';
import { storeSession, type TestBroker } from '../support/broker.js';
import { type TestHome, testHome } from '../support/cli.js';
import type { Person } from '../support/test-issuer.js';

/**
 * Commands run in-process (`run(options, ctx)`) against a real broker on 127.0.0.1 (src/server,
 * test/support/broker.ts, a real test issuer): for what the spawned binary cannot show because it
 * never has a terminal. The Context says "this is a terminal" and a prompter double answers the
 * questions; everything past the prompt (the client, the broker, the file store) is real.
 */

export interface Terminal {
  ctx: Context;
  io: TestIO;
  /** The questions asked, in order. */
  asked: string[];
  /** What the next questions are answered (confirm: booleans, input: strings). */
  answers: Array<boolean | string>;
  /** Ctrl-C. */
  interrupt(): void;
  store(): Promise<CredentialStore>;
  home: TestHome;
}

/** A person at a terminal, signed in to `broker` (a session record in their file store). */
export async function atTerminal(
  broker: TestBroker,
  person: Person,
  opts: { tty?: boolean } = {},
): Promise<Terminal> {
  const home = testHome({
    JITCTL_STORE: 'file',
    JITCTL_FILE_PASSPHRASE: `${person.sub} passphrase`,
    JITCTL_SERVER: broker.url,
  });
  const io = testIO({ tty: opts.tty ?? true });
  const asked: string[] = [];
  const answers: Array<boolean | string> = [];
  const next = (question: string) => {
    asked.push(question);
    const a = answers.shift();
    if (a === undefined) throw new Error(`unexpected question: ${question}`);
    return a;
  };
  const prompter: Prompter = {
    confirm: async (q) => next(q) === true,
    input: async (q) => String(next(q)),
    password: async (q) => String(next(q)),
  };
  const controller = new AbortController();
  const base = createContext({ io, env: home.env, prompter, openBrowser: async () => false });
  // Its own interrupt signal: no process-wide SIGINT handlers in the test worker.
  const ctx: Context = { ...base, interruptSignal: () => controller.signal };
  const store = () => openStore(ctx, 'file');
  await storeSession(await store(), broker, person);
  return { ctx, io, asked, answers, interrupt: () => controller.abort(), store, home };
}

/** Resolves once `io`'s stderr matches (or rejects after `ms`). */
export async function stderrShows(
  io: TestIO,
  pattern: RegExp,
  ms = 15_000,
): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = pattern.exec(io.stderrText());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no ${pattern} on stderr:\n${io.stderrText()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
