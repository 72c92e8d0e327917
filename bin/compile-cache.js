// Runs dist/cli.cjs (the hot commands as one CommonJS file) with a V8 code cache: Node 20 has no compile
// cache of its own (module.enableCompileCache is Node 22), but a script compiled through vm.Script
// can be given the code V8 produced for it on an earlier run. The cache lives in the user's cache
// directory ($XDG_CACHE_HOME/jitctl, else ~/.cache/jitctl: 0700, files 0600, written to a temporary
// file and renamed, so concurrent runs never read half a file), one file per command, so each
// holds the functions its command runs. Its name carries Node's version, the architecture and the
// bundle's size, modification time and inode: V8 itself checks only its own version, flags and
// the source's length, so a cache is never offered to another bundle. A cache that is missing,
// unreadable, not the user's own, writable by others or rejected by V8 is ignored and replaced
// after the command; anything that goes wrong with it only costs the time it would have saved.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

/**
 * The commands dist/cli.cjs holds: src/cli/program-only.ts's HOT_COMMANDS (a test checks that the
 * lists agree). bin/jitctl.js runs every other command from the ES module build.
 */
exports.HOT_COMMANDS = [
  'credential',
  'exec',
  'shell',
  'status',
  'list',
  'show',
  'wait',
  'request',
  'roles',
  'approve',
  'deny',
];

function cacheDir() {
  const home = process.env.HOME || require('node:os').homedir();
  const base = process.env.XDG_CACHE_HOME || path.join(home, '.cache');
  return path.join(base, 'jitctl');
}

/** The cache's bytes when it is a regular file of this user's that nobody else can write. */
function readOwn(file) {
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0));
    const st = fs.fstatSync(fd);
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) return undefined;
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      const n = fs.readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === st.size ? buf : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes what `produce` returns, once the directory is known to be usable (a read-only home
 * costs a failed mkdir, not the serialisation). */
function writeOwn(file, produce) {
  const dir = path.dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) return;
    fs.writeFileSync(tmp, produce(), { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
    // The same command's caches for other bundles or Node versions are stale now.
    const prefix = `${path.basename(file).split('-v')[0]}-v`;
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith(prefix) && name.endsWith('.bin') && name !== path.basename(file)) {
        fs.unlinkSync(path.join(dir, name));
      }
    }
  } catch {
    try {
      fs.unlinkSync(tmp);
    } catch {}
  }
}

exports.runCached = function runCached(bundle) {
  // tsup.config.ts writes the bundle in ASCII only, which Latin-1 decodes exactly and about five
  // times faster than UTF-8 (~2 ms a start); a bundle with other bytes is decoded as UTF-8.
  const bytes = fs.readFileSync(bundle);
  const source = require('node:buffer').isAscii(bytes)
    ? bytes.toString('latin1')
    : bytes.toString('utf8');
  let file;
  let cachedData;
  try {
    const st = fs.statSync(bundle);
    const word = exports.HOT_COMMANDS.includes(process.argv[2]) ? process.argv[2] : 'cli';
    const key = `${process.version}-${process.arch}-${st.size}-${Math.trunc(st.mtimeMs)}-${st.ino}`;
    file = path.join(cacheDir(), `v8-${word}-${key}.bin`);
    cachedData = readOwn(file);
  } catch {
    file = undefined;
  }
  // CommonJS's own wrapper, as Module.wrap() writes it (node:module itself is not loaded: it costs
  // more than it saves here). The bundle requires only packages and Node's modules, which resolve
  // from bin/ as from dist/, so this file's require() serves it.
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
  const script = new vm.Script(wrapped, { filename: bundle, cachedData });
  if (file && (cachedData === undefined || script.cachedDataRejected)) {
    // After the command, when the functions it ran are compiled: the cache holds them too.
    process.once('exit', () => writeOwn(file, () => script.createCachedData()));
  }
  const mod = { exports: {} };
  script
    .runInThisContext()
    .call(mod.exports, mod.exports, require, mod, bundle, path.dirname(bundle));
};
