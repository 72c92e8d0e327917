import { InterruptedError, UsageError } from './errors.js';
import type { IO } from './io.js';

/**
 * Questions on the terminal (@inquirer/prompts, loaded only when a question is asked). Asking
 * without a terminal is a usage error that names the flag to use instead (cli/cli's rule:
 * destructive verbs need `--yes` when not interactive).
 */
export interface Prompter {
  confirm(message: string, options?: { default?: boolean; orFlag?: string }): Promise<boolean>;
  input(
    message: string,
    options?: { orFlag?: string; validate?: (v: string) => true | string },
  ): Promise<string>;
  password(message: string, options?: { orFlag?: string }): Promise<string>;
}

export function terminalPrompter(io: IO, signal?: AbortSignal): Prompter {
  const ensure = (orFlag: string | undefined, what: string) => {
    if (!io.canPrompt()) {
      throw new UsageError(`cannot ask for ${what}: no interactive terminal`, {
        hint: orFlag ? `pass ${orFlag}` : undefined,
      });
    }
  };
  const context = () => ({ input: io.stdin, output: io.stderr, ...(signal ? { signal } : {}) });
  return {
    async confirm(message, options = {}) {
      ensure(options.orFlag, 'confirmation');
      const { confirm } = await import('@inquirer/prompts');
      return asked(confirm({ message, default: options.default ?? false }, context()));
    },
    async input(message, options = {}) {
      ensure(options.orFlag, message.replace(/[:?]\s*$/, ''));
      const { input } = await import('@inquirer/prompts');
      return asked(
        input({ message, ...(options.validate ? { validate: options.validate } : {}) }, context()),
      );
    },
    async password(message, options = {}) {
      ensure(options.orFlag, message.replace(/[:?]\s*$/, ''));
      const { password } = await import('@inquirer/prompts');
      return asked(password({ message, mask: '*' }, context()));
    },
  };
}

/**
 * Ctrl-C (or Ctrl-D) at a question is the person stopping the command, not a failure: inquirer
 * rejects with ExitPromptError (AbortPromptError when the signal aborted it), which becomes the
 * interrupt (exit 130) for the caller to word ("nothing was sent").
 */
async function asked<T>(question: Promise<T>): Promise<T> {
  try {
    return await question;
  } catch (err) {
    const name = (err as { name?: unknown } | null)?.name;
    if (name === 'ExitPromptError' || name === 'AbortPromptError') {
      throw new InterruptedError('interrupted at the question', { cause: err });
    }
    throw err;
  }
}
