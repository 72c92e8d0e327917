#!/bin/sh
':' //; case "$1" in exec | shell) [ -r "/proc/$$/status" ] && while read -r k v; do [ "$k" = SigIgn: ] && JITCTL_SIGIGN=$v && export JITCTL_SIGIGN && break; done <"/proc/$$/status" ;; esac
':' //; exec node "$0" "$@"
// The lines above are for /bin/sh, which runs this file first on Linux and macOS; to Node they are
// a string and a comment. Node resets every signal that was ignored when it started (nohup's
// SIGHUP, a script's `trap '' INT`) to the default before any JavaScript runs, so jitctl could
// never tell them apart. The shell still can: for exec and shell it passes the ignored set on as
// JITCTL_SIGIGN (the SigIgn mask of /proc/<pid>/status, Linux only), which keeps them ignored in
// jitctl and in the command (src/exec/inherited-signals.ts). Then it starts Node, as
// `#!/usr/bin/env node` would. (Not formatted by biome, see biome.json: it would write `':';`,
// which sh reads as two commands.)
//
// A CommonJS entry (see bin/package.json): Node starts a CommonJS file about 15 ms faster than an
// ES module, and `jitctl --version` needs nothing else. Everything else loads the bundled CLI.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  process.stderr.write(`jitctl needs Node.js 20.19 or newer; this is ${process.version}.\n`);
  process.exitCode = 1;
} else if (
  process.argv.length === 3 &&
  (process.argv[2] === '--version' || process.argv[2] === '-v')
) {
  // Straight to the descriptor: making process.stdout (a pipe's stream) would cost more than the
  // rest of `--version` (docs/performance.md). A reader that went away is not an error (as in
  // src/cli/entry.ts); a full disk or a closed stdout is said in one line.
  const line = `${require('../package.json').version}\n`;
  try {
    require('node:fs').writeSync(1, line);
  } catch (err) {
    if (err.code === 'EAGAIN') process.stdout.write(line);
    else if (err.code !== 'EPIPE') {
      process.stderr.write(`error: cannot write the version: ${err.message}\n`);
      process.exitCode = 1;
    }
  }
} else {
  // The commands run all day start from one CommonJS file with a V8 code cache; the rest from the
  // ES module build (bin/compile-cache.js, tsup.config.ts). JITCTL_ESM=1 runs the ES module build
  // for every command (to compare the two).
  const cache = require('./compile-cache.js');
  if (cache.HOT_COMMANDS.includes(process.argv[2]) && process.env.JITCTL_ESM !== '1') {
    cache.runCached(require('node:path').join(__dirname, '..', 'dist', 'cli.cjs'));
  } else {
    import('../dist/cli.js');
  }
}
