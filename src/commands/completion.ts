import type { Command, Help } from 'commander';
import { REQUEST_STATES } from '../api/schemas.js';
import { VERSION } from '../api/version.js';
import type { Context } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';

/**
 * `jitctl completion bash|zsh|fish`: a completion script generated from the commander tree
 * itself, so commands and flags never drift from what jitctl accepts. Role names and request ids
 * come from `jitctl __complete roles|requests` (src/commands/complete.ts: a cache, or the broker
 * with a short budget, never a prompt). After `--` (exec), the shell completes the command line
 * of the program to run.
 */
export interface Options {
  shell: string;
  program: Command;
}

const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** What a positional argument or a flag's value completes to. */
type Values = { kind: 'role' | 'request' | 'file' | 'none' } | { kind: 'words'; words: string[] };

interface Flag {
  names: string[];
  description: string;
  /** undefined: the flag takes no value. */
  value: Values | undefined;
}

interface Spec {
  /** "" for jitctl itself, "audit verify" for a subcommand. */
  path: string;
  subs: Array<{ name: string; description: string }>;
  flags: Flag[];
  /** The first positional argument. */
  arg: Values;
}

/** Flags whose values have a known set of words, or are files. */
const FLAG_VALUES: Record<string, Values> = {
  '--store': { kind: 'words', words: ['keychain', 'file', 'memory'] },
  '--state': { kind: 'words', words: [...REQUEST_STATES] },
  '--policy': { kind: 'file' },
  '--config': { kind: 'file' },
  '--federated-token': { kind: 'file' },
  '--shell': { kind: 'file' },
  '--data-dir': { kind: 'file' },
};

/** Positional arguments by name. */
function argValues(help: Help, name: string | undefined, cmd: Command): Values {
  switch (name) {
    case 'role':
      return { kind: 'role' };
    case 'id':
      return { kind: 'request' };
    case 'file':
      return { kind: 'file' };
    case 'shell':
      return { kind: 'words', words: [...SHELLS] };
    case 'command':
      return { kind: 'words', words: help.visibleCommands(cmd.parent ?? cmd).map((c) => c.name()) };
    default:
      return { kind: 'none' };
  }
}

export function completionSpecs(program: Command): Spec[] {
  // The program's own Help (not a `new Help()`): a value import of commander here would split it
  // out of the entry bundle into a chunk of its own, one more file for every command to load.
  const help = program.createHelp();
  const out: Spec[] = [];
  const walk = (cmd: Command, path: string) => {
    const subs = help.visibleCommands(cmd);
    out.push({
      path,
      subs: subs.map((c) => ({ name: c.name(), description: c.description() })),
      flags: help.visibleOptions(cmd).map((o) => ({
        names: [o.short, o.long].filter((n): n is string => Boolean(n)),
        description: o.description,
        value:
          o.required || o.optional
            ? (FLAG_VALUES[o.long ?? ''] ?? { kind: 'none' as const })
            : undefined,
      })),
      arg: argValues(help, cmd.registeredArguments[0]?.name(), cmd),
    });
    for (const sub of subs) {
      const subPath = path ? `${path} ${sub.name()}` : sub.name();
      if (sub.name() !== 'help') walk(sub, subPath);
      else {
        // commander's own `help [command]`: completes the commands beside it.
        out.push({
          path: subPath,
          subs: [],
          flags: [],
          arg: { kind: 'words', words: subs.map((c) => c.name()).filter((n) => n !== 'help') },
        });
      }
    }
  };
  walk(program, '');
  return out;
}

export async function run(options: Options, ctx: Context): Promise<number> {
  const shell = options.shell.trim().toLowerCase();
  if (!(SHELLS as readonly string[]).includes(shell)) {
    throw new UsageError(`no completion for ${JSON.stringify(options.shell)}`, {
      hint: 'choose bash, zsh or fish: jitctl completion bash',
    });
  }
  const specs = completionSpecs(options.program);
  const script = shell === 'bash' ? bash(specs) : shell === 'zsh' ? zsh(specs) : fish(specs);
  ctx.io.out(script);
  return 0;
}

// ---- shared shell pieces -------------------------------------------------------------------

/** POSIX single quotes. */
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();
const valueFlags = (spec: Spec) =>
  spec.flags.filter((f) => f.value !== undefined).flatMap((f) => f.names);
const allFlags = (spec: Spec) => spec.flags.flatMap((f) => f.names);
const argWord = (v: Values) =>
  v.kind === 'words' ? `words:${v.words.join(' ')}` : v.kind === 'none' ? '' : v.kind;

function flagValueCases(specs: Spec[], render: (flag: string, v: Values) => string): string {
  const seen = new Map<string, Values>();
  for (const s of specs)
    for (const f of s.flags)
      if (f.value && f.value.kind !== 'none') for (const n of f.names) seen.set(n, f.value);
  return [...seen].map(([flag, v]) => render(flag, v)).join('\n');
}

const header = (shell: string) =>
  `# ${shell} completion for jitctl ${VERSION}, generated by \`jitctl completion ${shell}\`.\n`;

// ---- bash ----------------------------------------------------------------------------------

function bash(specs: Spec[]): string {
  const cases = specs
    .map(
      (s) =>
        `    ${q(s.path)}) subs=${q(s.subs.map((c) => c.name).join(' '))}; flags=${q(allFlags(s).join(' '))}; vflags=${q(valueFlags(s).join(' '))}; arg=${q(argWord(s.arg))};;`,
    )
    .join('\n');
  const values = flagValueCases(specs, (flag, v) =>
    v.kind === 'words'
      ? `    ${flag}) COMPREPLY=($(compgen -W ${q(v.words.join(' '))} -- "$2"));;`
      : `    ${flag}) COMPREPLY=($(compgen -f -- "$2"));;`,
  );
  return `${header('bash')}# Install: jitctl completion bash > ~/.local/share/bash-completion/completions/jitctl
_jitctl_spec() {
  case "$1" in
${cases}
    *) subs=''; flags=''; vflags=''; arg='';;
  esac
}

_jitctl_values() {
  case "$1" in
${values}
    *) COMPREPLY=();;
  esac
}

# Role names or request ids from jitctl itself (a cache, or the broker within 1.5 s; never a prompt).
_jitctl_words() {
  local word _rest
  "\${COMP_WORDS[0]}" __complete "$1" 2>/dev/null </dev/null | while IFS=$'\\t' read -r word _rest; do
    [[ -n "$word" ]] && printf '%s\\n' "$word"
  done
}

_jitctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local cmdpath='' subs flags vflags arg w i npos=0
  COMPREPLY=()
  _jitctl_spec ''
  for (( i = 1; i < COMP_CWORD; i++ )); do
    w="\${COMP_WORDS[i]}"
    if [[ "$w" == -- ]]; then
      # exec and shell: what follows is another command line.
      if (( i == COMP_CWORD - 1 )); then COMPREPLY=($(compgen -c -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
      return 0
    fi
    if [[ "$w" == -* ]]; then
      [[ "$w" != *=* && " $vflags " == *" $w "* ]] && (( i++ ))
      continue
    fi
    if (( npos == 0 )) && [[ -n "$subs" && " $subs " == *" $w "* ]]; then
      cmdpath="\${cmdpath:+$cmdpath }$w"
      _jitctl_spec "$cmdpath"
      continue
    fi
    (( npos++ ))
  done
  if [[ "$prev" == -* && " $vflags " == *" $prev "* ]]; then
    _jitctl_values "$prev" "$cur"
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return 0
  fi
  if [[ -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return 0
  fi
  (( npos > 0 )) && return 0
  case "$arg" in
    role) COMPREPLY=($(compgen -W "$(_jitctl_words roles)" -- "$cur"));;
    request) COMPREPLY=($(compgen -W "$(_jitctl_words requests)" -- "$cur"));;
    file) COMPREPLY=($(compgen -f -- "$cur"));;
    words:*) COMPREPLY=($(compgen -W "\${arg#words:}" -- "$cur"));;
  esac
  return 0
}
complete -o bashdefault -o default -F _jitctl jitctl
`;
}

// ---- zsh -----------------------------------------------------------------------------------

function zsh(specs: Spec[]): string {
  const desc = (name: string, d: string) => q(`${name.replaceAll(':', '\\:')}:${oneLine(d)}`);
  const cases = specs
    .map((s) => {
      const sdesc = s.subs.map((c) => desc(c.name, c.description)).join(' ');
      const fdesc = s.flags.flatMap((f) => f.names.map((n) => desc(n, f.description))).join(' ');
      return `    ${q(s.path)}) subs=${q(s.subs.map((c) => c.name).join(' '))}; sdesc=(${sdesc}); fdesc=(${fdesc}); vflags=${q(valueFlags(s).join(' '))}; arg=${q(argWord(s.arg))};;`;
    })
    .join('\n');
  const values = flagValueCases(specs, (flag, v) =>
    v.kind === 'words'
      ? `    ${flag}) compadd -- ${v.words.map(q).join(' ')};;`
      : `    ${flag}) _files;;`,
  );
  return `#compdef jitctl
${header('zsh')}# Install: jitctl completion zsh > "\${fpath[1]}/_jitctl" (or any directory on $fpath), then restart zsh.
# Or, for this shell only: source <(jitctl completion zsh)

_jitctl_spec() {
  case "$1" in
${cases}
    *) subs=''; sdesc=(); fdesc=(); vflags=''; arg='';;
  esac
}

_jitctl_values() {
  case "$1" in
${values}
  esac
}

_jitctl() {
  # Not "path": in zsh that name is tied to $PATH.
  local cmdpath='' subs vflags arg w line
  local -a sdesc fdesc items
  local -i i npos=0
  _jitctl_spec ''
  for (( i = 2; i < CURRENT; i++ )); do
    w=\${words[i]}
    if [[ $w == -- ]]; then
      # exec and shell: complete the command line after --.
      words=("\${(@)words[i+1,-1]}")
      (( CURRENT -= i ))
      _normal
      return
    fi
    if [[ $w == -* ]]; then
      [[ $w != *=* && " $vflags " == *" $w "* ]] && (( i++ ))
      continue
    fi
    if (( npos == 0 )) && [[ -n $subs && " $subs " == *" $w "* ]]; then
      cmdpath="\${cmdpath:+$cmdpath }$w"
      _jitctl_spec "$cmdpath"
      continue
    fi
    (( npos++ ))
  done
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]}
  if [[ $prev == -* && " $vflags " == *" $prev "* ]]; then
    _jitctl_values "$prev"
    return
  fi
  if [[ $cur == -* ]]; then
    _describe -t options 'option' fdesc
    return
  fi
  if (( \${#sdesc} )); then
    _describe -t commands 'jitctl command' sdesc
    return
  fi
  (( npos > 0 )) && return
  case $arg in
    role|request)
      for line in \${(f)"$(\${words[1]} __complete \${arg}s 2>/dev/null </dev/null)"}; do
        items+=("\${\${line%%$'\\t'*}//:/\\\\:}:\${line#*$'\\t'}")
      done
      _describe -t $arg $arg items
      ;;
    file) _files;;
    words:*) compadd -- \${=\${arg#words:}};;
  esac
}

if [[ "\${funcstack[1]}" == _jitctl ]]; then
  _jitctl "$@"
else
  compdef _jitctl jitctl
fi
`;
}

// ---- fish ----------------------------------------------------------------------------------

function fish(specs: Spec[]): string {
  const fq = (s: string) => `'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
  const vflags = [...new Set(specs.flatMap(valueFlags))];
  // Top-level commands that have subcommands of their own (audit, policy).
  const groups = specs.filter((s) => s.path !== '' && s.subs.length > 0).map((s) => s.path);
  const lines: string[] = [];
  for (const s of specs) {
    const cond = fq(`__jitctl_is ${s.path}`.trim());
    for (const c of s.subs) {
      lines.push(
        `complete -c jitctl -f -n ${cond} -a ${fq(c.name)} -d ${fq(oneLine(c.description))}`,
      );
    }
    for (const f of s.flags) {
      const names = f.names
        .map((n) => (n.startsWith('--') ? `-l ${fq(n.slice(2))}` : `-s ${fq(n.slice(1))}`))
        .join(' ');
      let value = '';
      if (f.value?.kind === 'words') value = ` -x -a ${fq(f.value.words.join(' '))}`;
      else if (f.value?.kind === 'file') value = ' -r -F';
      else if (f.value) value = ' -x';
      lines.push(`complete -c jitctl -n ${cond} ${names}${value} -d ${fq(oneLine(f.description))}`);
    }
    if (s.subs.length === 0) {
      const arg = s.arg;
      const first = fq(`__jitctl_is ${s.path}; and __jitctl_no_args`);
      if (arg.kind === 'role' || arg.kind === 'request') {
        lines.push(`complete -c jitctl -f -n ${first} -a ${fq(`(__jitctl_words ${arg.kind}s)`)}`);
      } else if (arg.kind === 'words') {
        lines.push(`complete -c jitctl -f -n ${first} -a ${fq(arg.words.join(' '))}`);
      }
      // No file names where the command takes none.
      if (arg.kind !== 'file') lines.push(`complete -c jitctl -f -n ${cond}`);
    }
  }
  return `${header('fish')}# Install: jitctl completion fish > ~/.config/fish/completions/jitctl.fish

# The command path on the line so far ("", "request", "audit verify"; "… --" after exec's --),
# and how many positional arguments it already has.
function __jitctl_scan
    set -l vflags ${vflags.map(fq).join(' ')}
    set -l groups ${groups.map(fq).join(' ')}
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmdpath
    set -l args 0
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        if test "$t" = '--'
            set cmdpath $cmdpath --
            break
        end
        if string match -q -- '-*' $t
            if not string match -q -- '*=*' $t; and contains -- $t $vflags
                set skip 1
            end
            continue
        end
        if test (count $cmdpath) -eq 0
            set cmdpath $t
        else if test (count $cmdpath) -eq 1; and test $args -eq 0; and contains -- $cmdpath[1] $groups
            set cmdpath $cmdpath $t
        else
            set args (math $args + 1)
        end
    end
    echo "$cmdpath"
    echo $args
end

function __jitctl_is
    set -l scan (__jitctl_scan)
    test "$scan[1]" = "$argv"
end

function __jitctl_no_args
    set -l scan (__jitctl_scan)
    test "$scan[2]" = 0
end

# Role names or request ids from jitctl itself (a cache, or the broker within 1.5 s; never a prompt).
function __jitctl_words
    jitctl __complete $argv[1] 2>/dev/null </dev/null
end

# exec and shell: after --, the command line of the program to run.
function __jitctl_after_dashdash
    contains -- -- (commandline -opc)
end
function __jitctl_command_line
    set -l tokens (commandline -opc)
    set -l after (contains -i -- -- $tokens)
    __fish_complete_subcommand --commandline $tokens[(math $after + 1)..-1] (commandline -ct)
end
complete -c jitctl -n __jitctl_after_dashdash -x -a '(__jitctl_command_line)'

${lines.join('\n')}
`;
}
