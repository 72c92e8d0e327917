import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { VERSION } from '../api/version.js';
import type { Context } from './context.js';
import { addAuditCommands } from './program-audit.js';
import { addBrokerCommands } from './program-broker.js';
import { addGovernanceCommands } from './program-governance.js';
import type { Act, CommandModule, RunResult } from './program-kit.js';
import { addExtendCommand } from './program-lifecycle.js';
import { buildOnlyWhatRuns } from './program-only.js';
import { addToolCommands } from './program-tools.js';
import { REVOKE_DESCRIPTION, REVOKE_HELP } from './revocation-help.js';

/**
 * The commander tree. It only parses flags: each action imports its command module on demand
 * (so `jitctl --version` loads nothing else) and calls `run(options, ctx)`. A command module
 * exports its Options type and `run`; tests call `run` directly.
 */

/**
 * docs/cli.md of the installed package, for --help. The same lookup as src/api/docs.ts, written
 * here so that every command's start does not load one more chunk for a line of help: this file
 * is bundled into dist/cli.js, beside which the package's docs/ is.
 */
function helpDocs(): string {
  for (const up of ['../docs/', '../../docs/']) {
    try {
      const path = fileURLToPath(new URL(`${up}cli.md`, import.meta.url));
      if (existsSync(path)) return path;
    } catch {
      // next
    }
  }
  return 'docs/cli.md in the jitctl package';
}

export interface ProgramResult {
  exitCode: number;
}

export function buildProgram(
  ctx: Context,
  result: ProgramResult,
  argv?: readonly string[],
): Command {
  const program = new Command('jitctl');
  // The command line, when given: a hot command builds only itself (src/cli/program-only.ts).
  buildOnlyWhatRuns(program, argv);
  const finish = (code: RunResult) => {
    result.exitCode = code ?? 0;
  };
  // Each action: import the command's module, build its options, run it.
  const act: Act =
    <O>(load: () => Promise<CommandModule<O>>, build: (...args: never[]) => O) =>
    async (...args: unknown[]) => {
      const options = (build as (...a: unknown[]) => O)(...args);
      const mod = await load();
      finish(await mod.run(options, ctx));
    };

  program
    .version(VERSION, '-v, --version', 'print the version')
    .description(
      'Just-in-time elevated access: ask for a role for a while, get it approved with fresh MFA, ' +
        'use the short-lived credential. Everything is audited.',
    )
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
    })
    .addHelpText(
      'after',
      () =>
        '\nExit codes: 0 ok, 1 error, 2 usage, 3 denied/expired/forbidden, 4 login needed,\n' +
        '5 still pending at --timeout, 69 broker unreachable, 130 interrupted.\n' +
        `Docs: ${helpDocs()} (every command), and the other pages beside it.`,
    );

  const server = (cmd: Command) =>
    cmd
      .option('--server <url>', 'broker URL (default: JITCTL_SERVER or the one you logged in to)')
      .option('--store <kind>', 'credential store: keychain, file or memory (default: keychain)');

  program.commandsGroup('Sign in:');

  server(program.command('login'))
    .description('sign in to a broker (device code or browser, with MFA when asked)')
    .addOption(new Option('--device', 'use the device code flow').conflicts('browser'))
    .addOption(
      new Option('--browser', 'use the browser on this machine (loopback redirect)').conflicts(
        'device',
      ),
    )
    .option('--no-open', 'print the sign-in URL instead of opening a browser')
    .option(
      '--federated-token <file>',
      'pipelines: exchange an OIDC token from FILE (or - for stdin)',
    )
    .action(
      act(
        () => import('../commands/login.js'),
        (o: {
          server?: string;
          store?: string;
          device?: boolean;
          browser?: boolean;
          open: boolean;
          federatedToken?: string;
        }) => o,
      ),
    );

  server(program.command('logout'))
    .description('forget the session and credentials of a broker')
    .option('--all', 'forget every broker')
    .action(
      act(
        () => import('../commands/logout.js'),
        (o: { server?: string; store?: string; all?: boolean }) => o,
      ),
    );

  server(program.command('status'))
    .description('who you are, your session and your credentials, their grants checked')
    .option('--json', 'print JSON')
    .option('--offline', 'read the store only, without asking the broker (for shell prompts)')
    .action(
      act(
        () => import('../commands/status.js'),
        (o: { server?: string; store?: string; json?: boolean; offline?: boolean }) => o,
      ),
    );

  program.commandsGroup('Ask for access:');

  server(program.command('roles'))
    .description('the roles you may request or review, and what asking for each takes')
    .option('--all', 'every role of the policy')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/roles.js'),
        (o: { server?: string; store?: string; all?: boolean; json?: boolean }) => o,
      ),
    );

  server(program.command('request'))
    .description('ask for a role for a while, then wait for approval')
    .argument('<role>', 'the role, e.g. prod-deploy')
    .option('--for <duration>', "how long you need it, e.g. 15m or 1h30m (default: the role's)")
    .option('--reason <text>', 'why you need it (shown to reviewers)')
    .option('--ticket <id>', 'a ticket or incident id')
    .option('--at <time>', 'start later: 14:00 today, or an RFC 3339 time (approvable now)')
    .option('--in <duration>', 'start later: this long from now, e.g. 2h')
    .option('--break-glass', 'emergency: approved at once, reviewed afterwards (needs --reason)')
    .option('--wait', 'wait for the decision (default)')
    .option('--no-wait', 'file the request and return')
    .option(
      '--timeout <duration>',
      'stop waiting after this long (exit 5, the request stays filed)',
    )
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/request.js'),
        (
          role: string,
          o: {
            server?: string;
            store?: string;
            for?: string;
            reason?: string;
            ticket?: string;
            wait: boolean;
            timeout?: string;
            json?: boolean;
            at?: string;
            in?: string;
            breakGlass?: boolean;
          },
        ) => ({ ...o, role }),
      ),
    );

  addExtendCommand(program, act, server);

  server(program.command('wait'))
    .description('resume waiting for a request you filed')
    .argument('<id>', 'request id')
    .option('--timeout <duration>', 'stop waiting after this long (exit 5)')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/wait.js'),
        (id: string, o: { server?: string; store?: string; timeout?: string; json?: boolean }) => ({
          ...o,
          id,
        }),
      ),
    );

  server(program.command('list'))
    .description('list requests')
    .addOption(new Option('--mine', 'only requests you filed').conflicts('reviewable'))
    .addOption(new Option('--reviewable', 'only requests you may review').conflicts('mine'))
    .option(
      '--state <state>',
      'pending, scheduled, approved, denied, cancelled, expired or revoked',
    )
    .option(
      '--break-glass [review]',
      'only break-glass grants: any, unreviewed, overdue, acknowledged or flagged',
    )
    .option('--limit <n>', 'at most this many')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/list.js'),
        (o: {
          server?: string;
          store?: string;
          mine?: boolean;
          reviewable?: boolean;
          state?: string;
          limit?: string;
          json?: boolean;
          breakGlass?: string | boolean;
        }) => o,
      ),
    );

  server(program.command('show'))
    .description('show one request')
    .argument('<id>', 'request id')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/show.js'),
        (id: string, o: { server?: string; store?: string; json?: boolean }) => ({ ...o, id }),
      ),
    );

  server(program.command('cancel'))
    .description('withdraw a pending request you filed')
    .argument('<id>', 'request id')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/cancel.js'),
        (id: string, o: { server?: string; store?: string; json?: boolean }) => ({ ...o, id }),
      ),
    );

  program.commandsGroup('Review:');

  for (const verb of ['approve', 'deny'] as const) {
    server(program.command(verb))
      .description(
        verb === 'approve'
          ? 'approve a request (needs fresh MFA)'
          : 'deny a request (needs fresh MFA)',
      )
      .argument('<id>', 'request id')
      .option('--comment <text>', 'a note for the requester and the audit log')
      .option('--fingerprint <f>', 'refuse if the request no longer matches this fingerprint')
      .option('-y, --yes', 'do not ask to confirm (required without a terminal)')
      .option('--json', 'print JSON')
      .action(
        act(
          () =>
            verb === 'approve' ? import('../commands/approve.js') : import('../commands/deny.js'),
          (
            id: string,
            o: {
              server?: string;
              store?: string;
              comment?: string;
              fingerprint?: string;
              yes?: boolean;
              json?: boolean;
            },
          ) => ({ ...o, id }),
        ),
      );
  }

  server(program.command('revoke'))
    .description(REVOKE_DESCRIPTION)
    .argument('<id>', 'request id')
    .option('--reason <text>', 'why (shown to the requester and to relying parties)')
    .option('-y, --yes', 'do not ask to confirm (required without a terminal)')
    .option('--json', 'print JSON')
    .addHelpText('after', REVOKE_HELP)
    .action(
      act(
        () => import('../commands/revoke.js'),
        (id: string, o: { server?: string; yes?: boolean; json?: boolean; reason?: string }) => ({
          ...o,
          id,
        }),
      ),
    );

  program.commandsGroup('Use a credential:');

  const useOptions = (cmd: Command) =>
    server(cmd)
      .option('--request', 'when no credential is active, request one and wait for it')
      .option('--for <duration>', 'with --request: how long')
      .option('--reason <text>', 'with --request: why')
      .option('--ticket <id>', 'with --request: a ticket id')
      .option('--no-store', 'keep the credential in memory only (nothing written anywhere)')
      .option('--allow-nested', 'run even inside another jitctl session');

  useOptions(program.command('exec'))
    .description(
      'run a command with the credential in its environment: jitctl exec [role] -- cmd args…',
    )
    .argument('[role]', 'the role (default: the only active one)')
    .option(
      '--kill-at-expiry',
      'at expiry, end the command and everything it started (SIGTERM, then SIGKILL)',
    )
    // A command given without `--` (`jitctl exec prod ls`): exec says where `--` goes.
    .allowExcessArguments(true)
    .configureOutput({
      ...program.configureOutput(),
      outputError: (text, write) =>
        write(
          ctx.passthrough === undefined && text.includes('unknown option')
            ? `${text}hint: if it is the command's, put -- before the command: jitctl exec [role] -- command [args…]\n`
            : text,
        ),
    })
    .action(
      act(
        () => import('../commands/exec.js'),
        (
          role: string | undefined,
          o: {
            server?: string;
            store: boolean | string;
            request?: boolean;
            for?: string;
            reason?: string;
            ticket?: string;
            allowNested?: boolean;
            killAtExpiry?: boolean;
          },
          cmd: Command,
        ) => ({
          ...o,
          role,
          command: [...(ctx.passthrough ?? [])],
          misplaced: cmd.args.slice(1),
        }),
      ),
    );

  useOptions(program.command('shell'))
    .description('start a subshell with the credential; the prompt shows the role and time left')
    .argument('[role]', 'the role (default: the only active one)')
    .option('--shell <path>', 'the shell to run (default: $SHELL)')
    .action(
      act(
        () => import('../commands/shell.js'),
        (
          role: string | undefined,
          o: {
            server?: string;
            store: boolean | string;
            request?: boolean;
            for?: string;
            reason?: string;
            ticket?: string;
            allowNested?: boolean;
            shell?: string;
          },
        ) => ({ ...o, role }),
      ),
    );

  server(program.command('credential'))
    .description('print the credential for tools: --kube (kubectl exec plugin), --json, --env')
    .argument('[role]', 'the role (default: the only active one)')
    .addOption(
      new Option('--json', 'token, expiry, role and request id as JSON').conflicts(['kube', 'env']),
    )
    .addOption(new Option('--kube', 'a Kubernetes ExecCredential').conflicts(['json', 'env']))
    .addOption(new Option('--env', 'export lines for eval').conflicts(['json', 'kube']))
    .option('--force', 'with --env: print even to a terminal')
    .action(
      act(
        () => import('../commands/credential.js'),
        (
          role: string | undefined,
          o: {
            server?: string;
            store?: string;
            json?: boolean;
            kube?: boolean;
            env?: boolean;
            force?: boolean;
          },
        ) => ({ ...o, role }),
      ),
    );

  addAuditCommands(program, act, server);
  addGovernanceCommands(program, act, server);

  addBrokerCommands(program, act);

  addToolCommands(program, act, server);

  return program;
}
