import type { Context } from './context.js';

/** What a command module exports: its Options type and `run`, which tests call directly. */
export type RunResult = number | undefined;
export interface CommandModule<O> {
  run(options: O, ctx: Context): Promise<RunResult>;
}

/**
 * A commander action that imports its command's module only when it runs (so `jitctl --version`
 * loads nothing else), builds the options from the parsed flags and calls `run`.
 */
export type Act = <O>(
  load: () => Promise<CommandModule<O>>,
  build: (...args: never[]) => O,
) => (...args: unknown[]) => Promise<void>;
