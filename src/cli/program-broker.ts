import type { Command } from 'commander';
import type { Act } from './program-kit.js';

/** The broker's commands: `jitctl server` and the operators' `jitctl server keys …`. */
export function addBrokerCommands(program: Command, act: Act): void {
  program.commandsGroup('Broker:');

  program
    .command('server')
    .description(
      'run the broker (with --dev: SQLite, a demo policy and a built-in identity provider)',
    )
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8787)')
    .option('--db <url>', 'sqlite:PATH or postgres://… (default sqlite:./jitctl.db)')
    .option('--policy <file>', 'the policy YAML file')
    .option('--oidc-issuer <url>', 'the identity provider people sign in with')
    .option('--oidc-client-id <id>', "the CLI's client id at that provider")
    .option('--config <file>', 'a YAML or JSON config file')
    .option(
      '--dev',
      'development mode: built-in identity provider, demo policy, local data directory',
    )
    .option(
      '--data-dir <dir>',
      'with --dev: where the database and keys live (default ./.jitctl-dev)',
    )
    .action(
      act(
        () => import('../commands/server.js'),
        (o: {
          listen?: string;
          db?: string;
          policy?: string;
          oidcIssuer?: string;
          oidcClientId?: string;
          config?: string;
          dev?: boolean;
          dataDir?: string;
        }) => o,
      ),
    );

  // `jitctl server keys …`: operators' commands on the broker's signing keys. They read the same
  // settings as `jitctl server` (--db, --config, --dev/--data-dir given before or after `keys`).
  const serverCommand = program.commands.find((c) => c.name() === 'server');
  if (!serverCommand) return; // not built: another command runs (src/cli/program-only.ts)
  const keys = serverCommand
    .command('keys')
    .description('list, rotate and retire the keys that sign credentials (docs/operations.md)');
  type KeysFlags = { db?: string; config?: string; dev?: boolean; dataDir?: string };
  const keysFlags = (cmd: Command): KeysFlags => {
    const o = cmd.optsWithGlobals<KeysFlags>();
    return { db: o.db, config: o.config, dev: o.dev, dataDir: o.dataDir };
  };
  keys
    .command('list')
    .description('show each key: kid, algorithm, state, and when it can be retired')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/server-keys/list.js'),
        (o: { json?: boolean }, cmd: Command) => ({ ...keysFlags(cmd), json: o.json }),
      ),
    );
  keys
    .command('rotate')
    .description('make a new signing key; the old one stays published until its credentials expire')
    .option('--alg <alg>', 'ES256, RS256 or EdDSA (default: signing_alg)')
    .option('--reason <text>', 'why, for the audit log')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/server-keys/rotate.js'),
        (o: { alg?: string; reason?: string; json?: boolean }, cmd: Command) => ({
          ...keysFlags(cmd),
          ...o,
        }),
      ),
    );
  keys
    .command('retire')
    .description('drop a published key from the JWKS once nothing it signed is valid')
    .argument('<kid>', 'the key id (or a unique prefix of at least 6 characters)')
    .option('--force', 'retire it even though credentials it signed may still be valid')
    .option('--reason <text>', 'why, for the audit log')
    .option('--json', 'print JSON')
    .action(
      act(
        () => import('../commands/server-keys/retire.js'),
        (kid: string, o: { force?: boolean; reason?: string; json?: boolean }, cmd: Command) => ({
          ...keysFlags(cmd),
          ...o,
          kid,
        }),
      ),
    );
}
