import { defineConfig, type Options } from 'tsup';
import { HOT_COMMANDS } from './src/cli/program-only.js';

/**
 * The CLI ships as one ESM bundle split into chunks: `dist/cli.js` holds the entry, commander and
 * the program tree; each command and its libraries load from their own chunk only when that
 * command runs. Pure-JS libraries used on the CLI's hot paths are bundled (module resolution and
 * many small files cost more than the code); native modules and the broker's heavy server stack
 * stay external because they are loaded only by `jitctl server` or need their own files.
 */
const esm: Options = {
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
};

/**
 * The commands people and tools run all day (src/cli/program-only.ts), as one CommonJS file,
 * `dist/cli.cjs`, which bin/jitctl.js runs for them with a V8 code cache (bin/compile-cache.js):
 * Node 20 caches compiled code only for scripts compiled through `vm.Script`, never for ES
 * modules, and its ES module loader is a cost of its own at every start (docs/performance.md).
 * Every other command runs from the ES module build above; one process only ever loads one of the
 * two. The file holds only what the hot commands need, since reading and deserialising it is paid
 * on every start: the other commands' modules are left out (a stub that says so), and libraries
 * that only a rarer path needs (sign-in, prompts, the broker's full client) are require()d from
 * node_modules when used (Node ≥ 20.19 loads ES modules with require()). ora and open are bundled:
 * their default export would not survive require() of an ES module. Dynamic import() is compiled
 * to require(): a script run from a code cache has no dynamic import callback on Node 20.
 */
const hot = new Set<string>(HOT_COMMANDS);
const cjs: Options = {
  entry: { cli: 'src/cli/entry.ts' },
  format: ['cjs'],
  outExtension: () => ({ js: '.cjs' }),
  platform: 'node',
  target: 'node20',
  splitting: false,
  sourcemap: true,
  // esbuild's own tree shaking: tsup's extra rollup pass would hoist every require() of the lazily
  // loaded modules to the top of the file, loading the broker's whole stack at every start.
  treeshake: false,
  shims: true,
  noExternal: ['commander', 'jose', 'yaml', 'ora', 'open'],
  esbuildOptions(options) {
    options.supported = { ...options.supported, 'dynamic-import': false };
  },
  plugins: [
    {
      // ASCII only, so that bin/compile-cache.js reads it as Latin-1 (faster than UTF-8 at every
      // start). esbuild already escapes strings and identifiers; this escapes what it leaves
      // (comments, regular expression literals), where \uXXXX means the same character.
      name: 'ascii-only',
      renderChunk: (code) => ({
        code: code.replace(
          /[^\0-\x7f]/g,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
        ),
      }),
    },
  ],
  esbuildPlugins: [
    {
      name: 'hot-commands-only',
      setup(build) {
        build.onResolve({ filter: /^\.\.\/commands\/[a-z/-]+\.js$/ }, (args) => {
          const name = /^\.\.\/commands\/([a-z/-]+)\.js$/.exec(args.path)![1]!;
          if (args.kind !== 'dynamic-import' || !/src\/cli\/program/.test(args.importer)) return;
          if (hot.has(name)) return;
          return { path: name, namespace: 'cold-command' };
        });
        build.onLoad({ filter: /.*/, namespace: 'cold-command' }, (args) => ({
          contents: `export async function run() { throw new Error(${JSON.stringify(
            `jitctl ${args.path} is not in dist/cli.cjs: bin/jitctl.js runs it from dist/cli.js`,
          )}); }`,
          loader: 'js',
        }));
      },
    },
  ],
};

export default defineConfig([esm, cjs]);
