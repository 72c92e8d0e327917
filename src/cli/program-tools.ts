import type { Command } from 'commander';
import type { Act } from './program-kit.js';

/** Tools: doctor, completion, lock, and the hidden helpers they use. */
export function addToolCommands(
  program: Command,
  act: Act,
  server: (cmd: Command) => Command,
): void {
  program.commandsGroup('Tools:');

  server(program.command('doctor'))
    .description('check this machine: Node, config, broker, TLS, clock, store, session, kubectl')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/doctor.js'),
        (o: { server?: string; store?: string; json?: boolean }) => o,
      ),
    );

  program
    .command('completion')
    .description('print a shell completion script: jitctl completion bash|zsh|fish')
    .argument('<shell>', 'bash, zsh or fish')
    .addHelpText(
      'after',
      '\nInstall:\n' +
        '  bash: jitctl completion bash > ~/.local/share/bash-completion/completions/jitctl\n' +
        '  zsh:  jitctl completion zsh > ~/.zfunc/_jitctl   (a directory on $fpath)\n' +
        '  fish: jitctl completion fish > ~/.config/fish/completions/jitctl.fish',
    )
    .action(
      act(
        () => import('../commands/completion.js'),
        (shell: string) => ({ shell, program }),
      ),
    );

  program
    .command('lock')
    .description('forget the unlocked file store: the unlock agent drops its key and stops')
    .action(
      act(
        () => import('../commands/lock.js'),
        () => ({}),
      ),
    );

  program
    .command('__agent', { hidden: true })
    .option('--socket <path>')
    .action(
      act(
        () => import('../commands/agent.js'),
        (o: { socket?: string }) => o,
      ),
    );

  program
    .command('__complete', { hidden: true })
    .argument('<what>', 'roles or requests')
    .option('--server <url>')
    .option('--store <kind>')
    .action(
      act(
        () => import('../commands/complete.js'),
        (what: string, o: { server?: string; store?: string }) => ({ ...o, what }),
      ),
    );
}
