#!/usr/bin/env node
// The entry stays tiny: check the runtime, then load the bundled CLI (dist/cli.js).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  process.stderr.write(`jitctl needs Node.js 20.19 or newer; this is ${process.version}.\n`);
  process.exit(1);
}
await import('../dist/cli.js');
