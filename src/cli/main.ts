import { type Context, createContext } from './context.js';
import { exitCodeOf, formatError } from './errors.js';
import { buildProgram } from './program.js';

/**
 * The CLI entry (bundled to dist/cli.js). The one place that turns errors into messages and exit
 * codes. Everything after the first `--` belongs to the command being run (exec), so commander
 * never sees it: `jitctl exec r -- --help` runs a program named `--help`.
 */
export async function main(argv: string[], ctx?: Context): Promise<number> {
  const dashdash = argv.indexOf('--', 2);
  const own = dashdash === -1 ? argv : argv.slice(0, dashdash);
  const passthrough = dashdash === -1 ? undefined : argv.slice(dashdash + 1);
  const context = ctx ?? createContext(passthrough ? { passthrough } : {});
  const result = { exitCode: 0 };
  const program = buildProgram(context, result, own);
  try {
    if (passthrough && !['exec', 'shell'].includes(own[2] ?? '')) {
      // Only exec and shell take a command after `--`; elsewhere commander handles `--` as usual.
      own.push('--', ...passthrough);
    }
    await program.parseAsync(own);
    return result.exitCode;
  } catch (caught) {
    // Some hints need a lookup the throwing code could not make (src/cli/hints.ts).
    const err =
      (caught as { name?: unknown } | null)?.name === 'NoCredentialError'
        ? await import('./hints.js').then((h) => h.refineError(context, caught)).catch(() => caught)
        : caught;
    const code = exitCodeOf(err);
    const commanderError =
      typeof (err as { code?: unknown })?.code === 'string' &&
      (err as { code: string }).code.startsWith('commander.');
    // commander already printed its own usage errors.
    if (!commanderError) context.io.err(`${formatError(err, context.debug)}\n`);
    return code;
  }
}
