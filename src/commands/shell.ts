import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import { clockTime, safe } from '../cli/output.js';
import { grantEndOf, useOf } from '../credentials/records.js';
import { keepIgnored } from '../exec/inherited-signals.js';
import { resolveCommand } from '../exec/resolve-command.js';
import { shellQuote } from './credential.js';
import { checkUseOptions, credentialToUse, runWithCredential, type UseOptions } from './exec.js';

/**
 * `jitctl shell [role] [--shell PATH]`: a subshell with the credential's environment, as `exec`
 * gives a command. bash and zsh get a prompt marked `[role 14m]` through an rc file in a private
 * temporary directory that first runs the user's own rc (bash `--rcfile`, zsh `ZDOTDIR`); other
 * shells get the same variables (JITCTL_ROLE, JITCTL_EXPIRES_AT) for their prompt themes.
 */

export interface Options extends UseOptions {
  shell?: string | undefined;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  if (options.shell === '')
    throw new UsageError('--shell is empty', { hint: 'give a path, e.g. /bin/bash' });
  const shell = options.shell ?? (ctx.env.SHELL || '/bin/sh');
  checkUseOptions(ctx, options);
  keepIgnored(ctx.env);
  // Before any credential is read or requested: a shell that cannot start is said at once.
  resolveCommand(shell, ctx.env.PATH);
  const { record, server, store } = await credentialToUse(ctx, options, 'shell');
  // The grant's end (the credential in the environment may expire sooner: credential.ttl).
  const expires = grantEndOf(record);

  const dir = await mkdtemp(join(tmpdir(), 'jitctl-shell-'));
  try {
    const setup = await promptSetup(ctx, shell, dir, record.role, expires);
    ctx.io.err(
      `jitctl: ${safe(basename(shell))} with ${safe(record.role)} until ${clockTime(expires)} ` +
        `(${timeLeft(expires, ctx.clock.now())} left); exit the shell to drop it\n`,
    );
    const code = await runWithCredential(ctx, {
      record,
      server,
      store,
      kind: 'shell',
      command: shell,
      args: setup.args,
      extraEnv: setup.env,
      // The role's `kill_at_expiry: true` ends the shell as it ends exec's command.
      atExpiry: useOf(record).kill_at_expiry ? 'end' : 'notify',
      // An extension: the prompt reads the new end before the next prompt.
      onNewEnd: (end) => void writeEnd(dir, end).catch(() => {}),
    });
    ctx.io.err(`jitctl: left the ${safe(record.role)} shell\n`);
    return code;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Where the prompt reads the grant's end (whole seconds), replaced atomically when it moves. */
async function writeEnd(dir: string, endMs: number): Promise<void> {
  const tmp = join(dir, 'expires.new');
  await writeFile(tmp, `${Math.floor(endMs / 1000)}\n`, { mode: 0o600 });
  await rename(tmp, join(dir, 'expires'));
}

interface PromptSetup {
  args: string[];
  env: Record<string, string>;
}

/**
 * The role as it appears in the prompt: only characters that no shell or prompt language
 * treats specially, so a role name can never run code through PS1 (bash promptvars, zsh
 * PROMPT_SUBST) or send escape sequences to the terminal.
 */
export function promptLabel(role: string): string {
  return role.replace(/[^A-Za-z0-9._:@/+-]/g, '?').slice(0, 64);
}

/**
 * Time left as the prompt shows it: 45s, 14m, 1h30m, expired. Whole seconds on both sides and
 * rounded down, exactly as {@link TIME_LEFT} computes it in the shell before each prompt, so the
 * banner and the first prompt say the same.
 */
export function timeLeft(expiresMs: number, nowMs: number): string {
  const s = Math.floor(expiresMs / 1000) - Math.floor(nowMs / 1000);
  if (s <= 0) return 'expired';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return m === 0 ? `${h}h` : `${h}h${m}m`;
}

/** Time left, computed by the shell before each prompt: 45s, 14m, 1h30m, expired. */
export const TIME_LEFT = `
  local s=$(( __jitctl_expires - __jitctl_now ))
  if (( s <= 0 )); then __jitctl_left=expired
  elif (( s < 60 )); then __jitctl_left="\${s}s"
  elif (( s < 3600 )); then __jitctl_left="$(( s / 60 ))m"
  elif (( s % 3600 / 60 == 0 )); then __jitctl_left="$(( s / 3600 ))h"
  else __jitctl_left="$(( s / 3600 ))h$(( s % 3600 / 60 ))m"
  fi`;

async function promptSetup(
  ctx: Context,
  shell: string,
  dir: string,
  role: string,
  expiresMs: number,
): Promise<PromptSetup> {
  const name = basename(shell);
  const label = promptLabel(role);
  const expires = Math.floor(expiresMs / 1000);
  // The prefix is re-applied before every prompt (PROMPT_COMMAND / precmd), after whatever the
  // user's rc or theme did to the prompt, and replaced rather than stacked.
  if (name === 'bash') {
    const rc = join(dir, 'bashrc');
    await writeFile(
      rc,
      `# jitctl shell: your own ~/.bashrc first, then the prompt marker. Removed on exit.
if [ -r "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
__jitctl_label='${label}'
__jitctl_expires=${expires}
__jitctl_end_file=${shellQuote(join(dir, 'expires'))}
__jitctl_prompt() {
  local __jitctl_now __jitctl_left
  # jitctl writes the grant's new end here when it is extended.
  if [ -r "$__jitctl_end_file" ]; then read -r __jitctl_expires < "$__jitctl_end_file"; fi
  if [ -n "\${EPOCHSECONDS-}" ]; then __jitctl_now=$EPOCHSECONDS; else __jitctl_now=$(date +%s); fi
${TIME_LEFT}
  PS1=\${PS1#"\${__jitctl_prefix-}"}
  __jitctl_prefix="[\${__jitctl_label} \${__jitctl_left}] "
  PS1="\${__jitctl_prefix}\${PS1}"
}
PROMPT_COMMAND="\${PROMPT_COMMAND:+\${PROMPT_COMMAND%;};}__jitctl_prompt"
`,
      { mode: 0o600 },
    );
    return { args: ['--rcfile', rc], env: {} };
  }
  if (name === 'zsh') {
    // zsh reads every startup file from $ZDOTDIR: ours restores the user's ZDOTDIR, runs their
    // .zshenv and installs a precmd hook; zsh then reads their own .zprofile/.zshrc as usual.
    const original = ctx.env.ZDOTDIR;
    await writeFile(
      join(dir, '.zshenv'),
      `# jitctl shell: restores your ZDOTDIR, runs your .zshenv, marks the prompt. Removed on exit.
${original !== undefined ? `export ZDOTDIR=${shellQuote(original)}` : 'unset ZDOTDIR'}
if [[ -r "\${ZDOTDIR:-$HOME}/.zshenv" ]]; then source "\${ZDOTDIR:-$HOME}/.zshenv"; fi
if [[ -o interactive ]]; then
  __jitctl_label='${label}'
  __jitctl_expires=${expires}
  __jitctl_end_file=${shellQuote(join(dir, 'expires'))}
  zmodload -F zsh/datetime p:EPOCHSECONDS 2>/dev/null
  __jitctl_precmd() {
    local __jitctl_left __jitctl_now=\${EPOCHSECONDS:-$(date +%s)}
    if [[ -r "$__jitctl_end_file" ]]; then read -r __jitctl_expires < "$__jitctl_end_file"; fi
${TIME_LEFT}
    PROMPT=\${PROMPT#"\${__jitctl_prefix-}"}
    __jitctl_prefix="[\${__jitctl_label} \${__jitctl_left}] "
    PROMPT="\${__jitctl_prefix}\${PROMPT}"
  }
  autoload -Uz add-zsh-hook && add-zsh-hook precmd __jitctl_precmd
fi
`,
      { mode: 0o600 },
    );
    return { args: [], env: { ZDOTDIR: dir } };
  }
  return { args: [], env: {} };
}
