import type { Command } from 'commander';

/**
 * The commands people and tools run all day (kubectl runs `jitctl credential --kube` on every
 * kubectl command; shells run `status` in their prompt). When one of them is the command being
 * run, only it is built: commander's tree of every command, each with its options and help, is
 * a measurable part of a short command's start (docs/performance.md). Every other command line
 * (help, completion, a typo that wants a suggestion) builds the whole tree as before.
 *
 * The same commands are the ones bin/jitctl.js runs from dist/cli.cjs, the CommonJS bundle with
 * a V8 code cache, which holds only them (tsup.config.ts; test/repo/hot-commands.test.ts checks
 * that the lists agree).
 */
export const HOT_COMMANDS = [
  'credential',
  'exec',
  'shell',
  'status',
  'list',
  'show',
  'wait',
  'request',
  'roles',
  'approve',
  'deny',
] as const;
const HOT: ReadonlySet<string> = new Set(HOT_COMMANDS);

/** Stands in for a command that is not built: every call on it returns it, and does nothing. */
const UNBUILT: Command = new Proxy(
  {},
  { get: (_target, prop) => (prop === 'then' ? undefined : () => UNBUILT) },
) as Command;

/**
 * Makes `program.command(name)` build only the command named by `argv[2]` when that is a hot
 * command; the others get {@link UNBUILT}. Call before adding commands.
 */
export function buildOnlyWhatRuns(program: Command, argv: readonly string[] | undefined): void {
  const wanted = argv?.[2];
  if (wanted === undefined || !HOT.has(wanted)) return;
  const add = program.command.bind(program) as (...args: unknown[]) => Command;
  program.command = ((nameAndArgs: string, ...rest: unknown[]) =>
    nameAndArgs.split(' ')[0] === wanted ? add(nameAndArgs, ...rest) : UNBUILT) as never;
}
