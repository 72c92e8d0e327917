import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startWitness } from '../../src/exec/group-witness.js';
import { waitFor } from '../credentials/fixtures.js';

/**
 * The witness on its own: a signal that reached it before the question is reported, one that did
 * not is not, every time (a signal sent to the witness here stands for one sent to the whole
 * process group, which it is part of). The whole-group cases with real groups and terminals are
 * in test/commands/exec-signals.test.ts.
 */

/** Polls an async probe until it is true. */
async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 30_000;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Before it is ready it cannot tell (undefined); asking is harmless. */
const ready = (w: ReturnType<typeof startWitness>) =>
  until(async () => (await w.sawToo('SIGUSR1')) !== undefined, 'the witness to be ready');

describe('the group witness', () => {
  it('says whether it got the same signal, every time, for hundreds of questions in a row', async () => {
    const w = startWitness(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'], []);
    try {
      await ready(w);
      const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'] as const;
      const answers: string[] = [];
      const expected: string[] = [];
      for (let i = 0; i < 300; i++) {
        const sig = signals[i % signals.length]!;
        const toGroup = (i * 7) % 3 !== 0;
        if (toGroup) process.kill(w.pid!, sig);
        answers.push(`${i} ${sig} ${await w.sawToo(sig)}`);
        expected.push(`${i} ${sig} ${toGroup}`);
      }
      expect(answers).toEqual(expected);
    } finally {
      w.close();
    }
  });

  it('signals that arrive together are each matched once; a later lone one is not taken for them', async () => {
    const w = startWitness(['SIGINT', 'SIGTERM'], []);
    try {
      await ready(w);
      process.kill(w.pid!, 'SIGTERM');
      process.kill(w.pid!, 'SIGINT');
      expect(await w.sawToo('SIGINT')).toBe(true);
      expect(await w.sawToo('SIGTERM')).toBe(true);
      expect(await w.sawToo('SIGTERM')).toBe(false);
      // Two group signals that jitctl got as one (they merge while pending): the next one sent
      // to jitctl alone is still taken for what it is.
      process.kill(w.pid!, 'SIGTERM');
      process.kill(w.pid!, 'SIGTERM');
      expect(await w.sawToo('SIGTERM')).toBe(true);
      expect(await w.sawToo('SIGTERM')).toBe(false);
    } finally {
      w.close();
    }
  });

  it('ignored signals neither end it nor count; it ends with jitctl (its stdin closes)', async () => {
    const w = startWitness(['SIGINT', 'SIGHUP'], [1]);
    await ready(w);
    const pid = w.pid!;
    for (const sig of ['SIGHUP', 'SIGALRM', 'SIGVTALRM', 'SIGPROF'] as const)
      process.kill(pid, sig);
    expect(await w.sawToo('SIGHUP')).toBe(false);
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    w.close();
    await waitFor(() => (existsSync(`/proc/${pid}`) ? undefined : true), 'the witness to go');
    expect(await w.sawToo('SIGINT')).toBeUndefined();
  });

  it('a witness killed by someone makes it say it cannot tell', async () => {
    const w = startWitness(['SIGINT'], []);
    await ready(w);
    process.kill(w.pid!, 'SIGKILL');
    await until(async () => (await w.sawToo('SIGINT')) === undefined, 'the witness to be gone');
    w.close();
  });
});
