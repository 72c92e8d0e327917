import type { Command } from 'commander';
import type { Act } from './program-kit.js';

/**
 * The lifecycle's commands, apart from program.ts so that file stays a table of contents. Same
 * rule: parse flags only, import the command's module when it runs.
 */

export function addExtendCommand(
  program: Command,
  act: Act,
  server: (cmd: Command) => Command,
): void {
  server(program.command('extend'))
    .description('ask for more time on an approved grant (reviewed like a request)')
    .argument('<id|role>', 'the request id, or the role of your grant')
    .option('--for <duration>', 'how much longer, e.g. 30m')
    .option('--reason <text>', 'why you need longer (shown to reviewers)')
    .option('--no-wait', 'ask and return without waiting for the review')
    .option('--timeout <duration>', 'stop waiting after this long (exit 5, the ask stays)')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/extend.js'),
        (
          target: string,
          o: {
            server?: string;
            store?: string;
            for?: string;
            reason?: string;
            wait: boolean;
            timeout?: string;
            json?: boolean;
          },
        ) => ({ ...o, target }),
      ),
    );
}
