import { defineConfig } from 'tsup';

/**
 * The CLI ships as one ESM bundle split into chunks: `dist/cli.js` holds the entry, commander and
 * the program tree; each command and its libraries load from their own chunk only when that
 * command runs. Pure-JS libraries used on the CLI's hot paths are bundled (module resolution and
 * many small files cost more than the code); native modules and the broker's heavy server stack
 * stay external because they are loaded only by `jitctl server` or need their own files.
 */
export default defineConfig({
  // The audit verifier's worker threads load their own entry (src/server/audit/log.ts).
  entry: { cli: 'src/cli/entry.ts', 'audit-verify-worker': 'src/server/audit/verify-worker.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  splitting: true,
  sourcemap: true,
  clean: true,
  treeshake: true,
  noExternal: [
    'commander',
    'jose',
    'openid-client',
    'oauth4webapi',
    'yaml',
    'ora',
    /^@inquirer\//,
    'open',
    'undici',
    '@sinclair/typebox',
  ],
  banner: {
    // Bundled CommonJS dependencies call require() for Node built-ins.
    js: "import { createRequire as __jitctlCreateRequire } from 'node:module'; const require = __jitctlCreateRequire(import.meta.url);",
  },
});
