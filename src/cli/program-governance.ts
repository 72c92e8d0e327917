import type { Command } from 'commander';
import type { Act } from './program-kit.js';

/** Governance (docs/governance.md): `jitctl report` and `jitctl access-review …`. */
export function addGovernanceCommands(
  program: Command,
  act: Act,
  server: (cmd: Command) => Command,
): void {
  program.commandsGroup('Reports and access reviews:');

  const collect = (v: string, prev: string[] = []) => [...prev, v];

  server(program.command('report'))
    .description('the access report: requests, decisions, break-glass, commands, unused access')
    .option('--since <when>', 'the period: a duration back from now (30d) or a date', '30d')
    .option('--role <role>', 'one role only')
    .option('--format <format>', 'text, md, html, csv or json', 'text')
    .option('--output <file>', 'write to FILE (0600) instead of stdout')
    .option('--frequent <count/window>', 'who counts as requesting unusually often', '3/24h')
    .action(
      act(
        () => import('../commands/report.js'),
        (o: {
          server?: string;
          store?: string;
          since?: string;
          role?: string;
          format?: string;
          output?: string;
          frequent?: string;
        }) => o,
      ),
    );

  const review = program
    .command('access-review')
    .description('periodic access reviews: who may request each role, and should they');
  const common = (cmd: Command) => server(cmd).option('--json', 'print JSON');
  type Base = { server?: string; store?: string; json?: boolean };

  common(review.command('start'))
    .description('open a campaign (auditors and admins)')
    .option('--role <role>', 'a role to review (repeat, or a comma-separated list)', collect)
    .option('--all', 'every role of the policy')
    .option('--reviewers <who>', 'who decides: group:security, user:… (repeat or list)', collect)
    .option('--due <duration>', 'how long reviewers have', '14d')
    .option('--title <text>', 'a title shown in lists and notifications')
    .action(
      act(
        () => import('../commands/access-review.js'),
        (
          o: Base & {
            role?: string[];
            all?: boolean;
            reviewers?: string[];
            due?: string;
            title?: string;
          },
        ) => ({
          ...o,
          action: 'start' as const,
        }),
      ),
    );
  common(review.command('list'))
    .description('the campaigns you may see')
    .option('--state <state>', 'open or closed')
    .action(
      act(
        () => import('../commands/access-review.js'),
        (o: Base & { state?: string }) => ({ ...o, action: 'list' as const }),
      ),
    );
  common(review.command('show'))
    .description('a campaign with its items and decisions')
    .argument('<id>', 'the campaign (ar_…)')
    .action(
      act(
        () => import('../commands/access-review.js'),
        (id: string, o: Base) => ({ ...o, id, action: 'show' as const }),
      ),
    );
  common(review.command('decide'))
    .description('keep or remove one item (reviewers; never your own access)')
    .argument('<id>', 'the campaign (ar_…)')
    .argument('<item>', "the item's number (# in show)")
    .argument('<decision>', 'keep or remove')
    .option('--comment <text>', 'why (required to remove)')
    .action(
      act(
        () => import('../commands/access-review.js'),
        (id: string, item: string, decision: string, o: Base & { comment?: string }) => ({
          ...o,
          id,
          item,
          decision,
          action: 'decide' as const,
        }),
      ),
    );
  common(review.command('close'))
    .description('close a campaign and list the policy edits to make')
    .argument('<id>', 'the campaign (ar_…)')
    .action(
      act(
        () => import('../commands/access-review.js'),
        (id: string, o: Base) => ({ ...o, id, action: 'close' as const }),
      ),
    );
}
