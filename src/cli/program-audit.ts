import type { Command } from 'commander';
import type { Act } from './program-kit.js';

/** The auditors' and policy authors' commands: `jitctl audit …` and `jitctl policy check`. */
export function addAuditCommands(
  program: Command,
  act: Act,
  server: (cmd: Command) => Command,
): void {
  program.commandsGroup('Audit and policy:');

  const audit = program.command('audit').description('the tamper-evident audit log');
  server(audit.command('verify'))
    .description('walk the hash chain and name the first bad event')
    .option('--db <url>', 'verify the database directly (sqlite:PATH or postgres://…)')
    .option(
      '--checkpoints <path>',
      'and prove the log extends the signed checkpoints in FILE or DIR',
    )
    .option('--jwks <file>', "trust the broker's keys in this saved JWKS (default: fetch it)")
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/audit.js'),
        (o: { server?: string; store?: string; db?: string; json?: boolean }) => ({
          ...o,
          action: 'verify' as const,
        }),
      ),
    );
  server(audit.command('tail'))
    .description('print audit events from a cursor, every one once, in order (auditors)')
    .option('-f, --follow', 'then wait for new events (Ctrl-C stops)')
    .option('--after <seq>', 'start after this event (resume where you stopped)')
    .option('--format <format>', 'text, jsonl (seq, prev_hash, hash) or ocsf', 'text')
    .action(
      act(
        () => import('../commands/audit-tail.js'),
        (o: object) => o,
      ),
    );
  server(audit.command('list'))
    .description('list audit events (auditors)')
    .option('--after <seq>', 'events after this sequence number')
    .option('--limit <n>', 'at most this many')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/audit.js'),
        (o: {
          server?: string;
          store?: string;
          after?: string;
          limit?: string;
          json?: boolean;
        }) => ({ ...o, action: 'list' as const }),
      ),
    );

  const policy = program.command('policy').description('policy files');
  policy
    .command('check')
    .description('validate a policy file and summarize its roles (--as: which rule would decide)')
    .argument('<file>', 'the policy YAML file')
    .option('--json', 'print JSON')
    .option('--as <who>', 'explain a request by this person: user:<email or subject>')
    .option('--group <group...>', 'with --as: their groups (repeat or list)')
    .option('--role <role>', 'with --as: the role asked for')
    .option('--at <time>', 'with --as: when it would start (14:00, or RFC 3339; default now)')
    .option('--for <duration>', "with --as: the duration asked for (default: the role's)")
    .option('--ticket <id>', 'with --as: the ticket given')
    .option('--on-call', 'with --as: they are on call (default: read the policy on_call file)')
    .option('--no-on-call', 'with --as: they are not on call')
    .action(
      act(
        () => import('../commands/policy.js'),
        (
          file: string,
          o: {
            json?: boolean;
            as?: string;
            group?: string[];
            role?: string;
            at?: string;
            for?: string;
            ticket?: string;
            onCall?: boolean;
          },
        ) => ({ ...o, file }),
      ),
    );
}
