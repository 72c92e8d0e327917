import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptLabel, TIME_LEFT, timeLeft } from '../../src/commands/shell.js';
import {
  fileStoreEnv,
  homeStore,
  type SeededCredential,
  seedCredential,
  sh,
  startCredentialBroker,
  waitFor,
} from '../credentials/fixtures.js';
import type { TestBroker } from '../support/broker.js';
import { BIN, runCli, testHome } from '../support/cli.js';

/**
 * `jitctl shell` in real bash and zsh under a pseudo-terminal (util-linux `script`): the user's
 * own rc runs first, the prompt shows the role and time left, the variables are there, the
 * shell's exit code comes back, and the private rc directory is gone afterwards.
 */

const home = testHome();
let b: TestBroker;
let env: Record<string, string>;
let deploy: SeededCredential;
const EVIL_ROLE = 'x$(touch PWNED)`touch PWNED2`%F{red}';
const ZSH = ['/usr/bin/zsh', '/bin/zsh'].find((p) => existsSync(p));

beforeAll(async () => {
  b = await startCredentialBroker();
  env = fileStoreEnv(home, b.url);
  const store = homeStore(home);
  deploy = await seedCredential(store, { role: 'prod-deploy', broker: b });
  await seedCredential(store, { role: EVIL_ROLE, validMs: 3.5 * 3_600_000, broker: b });
  // The user's own startup files: a prompt of their own, a marker, and options that would run
  // code found in the prompt (bash promptvars is on by default; zsh needs PROMPT_SUBST).
  writeFileSync(
    join(home.dir, '.bashrc'),
    "USER_RC=bash-rc-ran\nPS1='mine$ '\nshopt -s promptvars\n",
  );
  writeFileSync(join(home.dir, '.zshenv'), 'USER_ZSHENV=zshenv-ran\n');
  writeFileSync(
    join(home.dir, '.zshrc'),
    "USER_RC=zsh-rc-ran\nPROMPT='mine%# '\nsetopt PROMPT_SUBST\n",
  );
});
afterAll(async () => {
  home.cleanup();
  await b?.close();
});

/** The prompt's time-left code as a bash function `f` reading __jitctl_expires/__jitctl_now. */
const TIME_LEFT_FUNCTION = `f() {${TIME_LEFT}\n}`;

/** An interactive session on a pseudo-terminal: wait for output, type lines. */
function session(args: string[], extra: Record<string, string>) {
  const child = spawn(
    'script',
    ['-qfec', `exec ${sh(process.execPath, BIN, ...args)}`, '/dev/null'],
    {
      env: { ...env, ...extra },
      cwd: home.dir,
      stdio: 'pipe',
    },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    output: () => output,
    /** Output with terminal escape sequences removed, for matching prompts. */
    plain: () =>
      output
        .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
        .replace(/\x1b[=>]/g, '')
        .replace(/\r/g, ''),
    expect: (pattern: RegExp) => {
      const plain = () =>
        output
          .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
          .replace(/\x1b[=>]/g, '')
          .replace(/\r/g, '');
      return waitFor(() => pattern.exec(plain()) ?? undefined, `${pattern}`, 20_000).catch(
        (err: Error) => {
          throw new Error(`${err.message}; the terminal showed:\n${plain()}`);
        },
      );
    },
    type: (line: string) => child.stdin.write(`${line}\n`),
    done: done.then((code) => {
      child.stdin.end();
      return code;
    }),
  };
}

describe('jitctl shell: bash', () => {
  it('runs the user’s .bashrc, marks the prompt, keeps the variables, returns the exit code', async () => {
    const s = session(['shell', 'prod-deploy'], { SHELL: '/bin/bash' });
    await s.expect(/\[prod-deploy 1[45]m\] mine\$ /);
    s.type('echo "rc=$USER_RC role=$JITCTL_ROLE req=$JITCTL_REQUEST_ID"');
    await s.expect(/rc=bash-rc-ran role=prod-deploy req=req_\w+\n/);
    s.type('echo "dir=$(dirname "$(ps -o args= -p $$ | sed "s/.*--rcfile //")")"');
    const [, dir] = await s.expect(/dir=(\/\S+)\n/);
    s.type('stat -c "mode=%a" "$(dirname "$(ps -o args= -p $$ | sed "s/.*--rcfile //")")"');
    await s.expect(/mode=700\n/);
    s.type('exit 7');
    expect(await s.done).toBe(7);
    expect(s.plain()).toMatch(
      /^jitctl: bash with prod-deploy until \d\d:\d\d \(1[45]m left\); exit the shell to drop it\n/,
    );
    expect(s.plain()).toContain('jitctl: left the prod-deploy shell\n');
    expect(s.output()).not.toContain(deploy.token);
    expect(dir).toMatch(/jitctl-shell-/);
    expect(existsSync(dir!)).toBe(false);
  });

  it('a role name cannot run code or styles through the prompt', async () => {
    const s = session(['shell', EVIL_ROLE], { SHELL: '/bin/bash' });
    await s.expect(/\[x\?\?touch\?PWNED\?\?touch\?PWNED2\?\?F\?red\? 3h[0-3]\dm\] mine\$ /);
    s.type('exit');
    expect(await s.done).toBe(0);
    expect(existsSync(join(home.dir, 'PWNED'))).toBe(false);
    expect(existsSync(join(home.dir, 'PWNED2'))).toBe(false);
  });
});

describe.skipIf(!ZSH)('jitctl shell: zsh', () => {
  it('keeps the user’s ZDOTDIR and startup files, marks the prompt, returns the exit code', async () => {
    const s = session(['shell', 'prod-deploy'], { SHELL: ZSH! });
    await s.expect(/\[prod-deploy 1[45]m\] mine# /);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
    s.type('echo "env=$USER_ZSHENV rc=$USER_RC zdotdir=${ZDOTDIR-unset} role=$JITCTL_ROLE"');
    await s.expect(/env=zshenv-ran rc=zsh-rc-ran zdotdir=unset role=prod-deploy\n/);
    s.type('exit 5');
    expect(await s.done).toBe(5);
    expect(s.plain()).toContain('jitctl: zsh with prod-deploy until');
  });

  it('a role name cannot run code through PROMPT_SUBST', async () => {
    const s = session(['shell', EVIL_ROLE], { SHELL: ZSH! });
    await s.expect(/\[x\?\?touch\?PWNED\?\?touch\?PWNED2\?\?F\?red\? 3h[0-3]\dm\] mine# /);
    s.type('exit');
    expect(await s.done).toBe(0);
    expect(existsSync(join(home.dir, 'PWNED'))).toBe(false);
    expect(existsSync(join(home.dir, 'PWNED2'))).toBe(false);
  });
});

describe('jitctl shell: other cases', () => {
  it('another shell runs with the same environment, its exit code comes back', async () => {
    const r = await runCli(['shell', 'prod-deploy', '--shell', '/bin/sh'], {
      env,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
      input: 'echo "$JITCTL_ROLE ${JITCTL_STORE-unset}"\nexit 4\n',
    });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('prod-deploy unset\n');
  });

  it('refuses to nest, and a missing shell is exit 127', async () => {
    const nested = await runCli(['shell', 'prod-deploy', '--shell', '/bin/sh'], {
      env: { ...env, JITCTL_SESSION: 'req_outer' },
    });
    expect(nested.code).toBe(1);
    expect(nested.stderr).toContain('refusing to nest');
    const missing = await runCli(['shell', 'prod-deploy', '--shell', '/no/such/shell'], { env });
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('error: /no/such/shell: no such file');
  });

  it('the banner and the first prompt show the same time left', async () => {
    const h = testHome();
    try {
      // 14m30s: the rounding that made the banner say 15m while the prompt said 14m.
      await seedCredential(homeStore(h), { role: 'half', validMs: 14.5 * 60_000, broker: b });
      writeFileSync(join(h.dir, '.bashrc'), "PS1='$ '\n");
      const s = session(['shell', 'half'], {
        ...fileStoreEnv(h, b.url),
        HOME: h.dir,
        SHELL: '/bin/bash',
      });
      const [, prompt] = await s.expect(/\[half (\w+)\] \$ /);
      const [, banner] = /until \d\d:\d\d \((\w+) left\)/.exec(s.plain())!;
      expect(prompt).toBe('14m');
      expect(banner).toBe(prompt);
      s.type('exit');
      expect(await s.done).toBe(0);
    } finally {
      h.cleanup();
    }
  });

  it('timeLeft says what the prompt’s shell code says, second by second across every unit', () => {
    const seconds = [
      -5, 0, 1, 59, 60, 61, 119, 3599, 3600, 3601, 3659, 3660, 5400, 7199, 86_399, 90_061,
    ];
    const script = `${TIME_LEFT_FUNCTION}\nfor s in ${seconds.join(' ')}; do __jitctl_expires=$((1000000 + s)); __jitctl_now=1000000; f; echo "$__jitctl_left"; done`;
    const fromShell = execFileSync('/bin/bash', ['-c', script], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const fromBanner = seconds.map((s) => timeLeft((1_000_000 + s) * 1000 + 999, 1_000_000_000));
    expect(fromBanner).toEqual(fromShell);
  });

  it('labels: safe characters kept, everything else shown as ?', () => {
    expect(promptLabel('prod-deploy')).toBe('prod-deploy');
    expect(promptLabel('team/db.read:rw@eu+1_x')).toBe('team/db.read:rw@eu+1_x');
    expect(promptLabel('a$b`c\\d%e\x1b[31m')).toBe('a?b?c?d?e??31m');
  });
});
