import { accessSync, constants, type Stats, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { JitError } from '../cli/errors.js';
import { safe } from '../cli/output.js';

/**
 * Finds the program `command` names before it is started, as execvp would (a name with a `/` is
 * a path; any other is looked up in the command's PATH), so that each way of failing gets its
 * own message and the shell's exit code: 127 not found, 126 found but cannot be run (a
 * directory, no execute permission, permission denied). Node's spawn reports all of these as
 * ENOENT or EACCES, and a command started through /bin/sh (signals ignored at start) would only
 * get sh's message.
 */
export function resolveCommand(command: string, path: string | undefined): string {
  // Windows looks programs up with PATHEXT, which spawn does: leave it to spawn there.
  if (process.platform === 'win32') return command;
  const shown = safe(command);
  if (command === '') {
    throw new JitError('the command is empty', 127, { hint: 'put the command after --' });
  }
  if (command.includes('/')) {
    const problem = unusable(command);
    if (problem) throw problem.error(shown);
    return command;
  }
  let first: Problem | undefined;
  // An empty PATH entry is the current directory, as for execvp; no PATH: execvp's default.
  for (const dir of (path ?? '/bin:/usr/bin').split(delimiter)) {
    const candidate = join(dir || '.', command);
    const problem = unusable(candidate);
    if (!problem) return candidate;
    if (problem.kind !== 'missing') first ??= problem;
  }
  // Like execvp: a candidate that exists but cannot be run is reported when nothing better is found.
  if (first) throw first.error(shown);
  throw new JitError(`${shown}: command not found`, 127, {
    hint: 'check the name, or give its path',
  });
}

interface Problem {
  kind: 'missing' | 'cannot-run';
  error(shown: string): JitError;
}

function unusable(file: string): Problem | undefined {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') {
      return cannotRun(
        (s) => `${s}: permission denied`,
        'a directory on its path is not open to you',
      );
    }
    return {
      kind: 'missing',
      error: (s) =>
        new JitError(`${s}: no such file`, 127, { hint: 'check the path of the command' }),
    };
  }
  const shownFile = safe(file);
  if (st.isDirectory()) {
    return cannotRun(
      (s) => `${s}: is a directory${s === shownFile ? '' : ` (${shownFile})`}`,
      'name a program to run, not a directory',
    );
  }
  if (!st.isFile()) {
    return cannotRun((s) => `${s}: not a file that can be run`, 'name a program to run');
  }
  try {
    accessSync(file, constants.X_OK);
    return undefined;
  } catch {
    if ((st.mode & 0o111) === 0) {
      return cannotRun(
        (s) => `${s}: not executable${s === shownFile ? '' : ` (${shownFile})`}`,
        `it has no execute permission; if it is meant to be run: chmod +x ${shownFile}`,
      );
    }
    return cannotRun(
      (s) => `${s}: permission denied${s === shownFile ? '' : ` (${shownFile})`}`,
      'you are not allowed to execute it (its permissions leave you out)',
    );
  }
}

function cannotRun(message: (shown: string) => string, hint: string): Problem {
  return {
    kind: 'cannot-run',
    error: (shown) => new JitError(message(shown), 126, { hint }),
  };
}
