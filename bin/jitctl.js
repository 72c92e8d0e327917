#!/usr/bin/env node
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
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  import('../dist/cli.js');
}
