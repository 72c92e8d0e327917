import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../credentials/fixtures.js';

/**
 * A command that records what it receives, for the exec signal tests: `recorder LOG [die]`.
 *
 * At start it appends `ready <pid> <ppid> <pgrp> <ignored>` to LOG, where <ignored> is the mask
 * of signals it started with ignored (bit n-1 for signal n), then one line per signal it catches
 * (`SIGINT`, …). Signals it started with ignored stay ignored and are never recorded. It exits 3
 * once `LOG.stop` exists; with `die`, it dies of the first signal it catches (after recording it).
 *
 * A small C program when a C compiler is there (one process, no helpers in its process group);
 * otherwise the same in /bin/sh, which reads its ignored set from /proc.
 */

const CAUGHT = ['HUP', 'INT', 'QUIT', 'TERM', 'USR1', 'USR2', 'WINCH', 'ALRM'];

const C_SOURCE = `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fd = -1, die = 0;
static const int sigs[] = {${CAUGHT.map((s) => `SIG${s}`).join(', ')}};
static const char *names[] = {${CAUGHT.map((s) => `"SIG${s}\\n"`).join(', ')}};

static void on_signal(int sig) {
  for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++)
    if (sigs[i] == sig) write(fd, names[i], strlen(names[i]));
  if (die) { signal(sig, SIG_DFL); raise(sig); }
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600);
  die = argc > 2 && strcmp(argv[2], "die") == 0;
  unsigned long long ignored = 0;
  for (int n = 1; n < 64; n++) {
    struct sigaction old;
    if (sigaction(n, NULL, &old) == 0 && old.sa_handler == SIG_IGN) ignored |= 1ULL << (n - 1);
  }
  for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    struct sigaction old, sa;
    sigaction(sigs[i], NULL, &old);
    if (old.sa_handler == SIG_IGN) continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(sigs[i], &sa, NULL);
  }
  char line[128];
  int len = snprintf(line, sizeof line, "ready %d %d %d %llx\\n", getpid(), getppid(), getpgrp(), ignored);
  write(fd, line, len);
  char stop[4096];
  snprintf(stop, sizeof stop, "%s.stop", argv[1]);
  struct stat st;
  struct timespec tick = {0, 20 * 1000 * 1000};
  while (stat(stop, &st) != 0) nanosleep(&tick, NULL);
  return 3;
}
`;

const SH_SOURCE = `#!/bin/sh
log=$1
while read -r k v; do [ "$k" = SigIgn: ] && ign=$v; done </proc/$$/status
set -- $(sed 's/.*) //' /proc/$$/stat)
echo "ready $$ $PPID $3 $ign" >>"$log"
for s in ${CAUGHT.join(' ')}; do
  if [ "$2" = die ]; then trap "echo SIG$s >>'$log'; trap - $s; kill -$s \\$\\$" $s
  else trap "echo SIG$s >>'$log'" $s; fi
done
while [ ! -e "$log.stop" ]; do sleep 0.02; done
exit 3
`;

/** Builds the recorder into `dir`; returns its path. */
export function buildRecorder(dir: string): string {
  const source = join(dir, 'recorder.c');
  const bin = join(dir, 'recorder');
  writeFileSync(source, C_SOURCE);
  try {
    execFileSync('cc', ['-O1', '-o', bin, source], { stdio: 'pipe' });
    return bin;
  } catch {
    writeFileSync(bin, SH_SOURCE, { mode: 0o755 });
    return bin;
  }
}

export interface Recording {
  path: string;
  lines(): string[];
  /** The signals recorded, in order. */
  signals(): string[];
  count(sig: string): number;
  ready(): Promise<{ pid: number; parent: number; pgrp: number; ignored: bigint }>;
  waitCount(sig: string, n?: number): Promise<void>;
  stop(): void;
}

let n = 0;

/** A fresh log for one recorder run. */
export function recording(dir: string): Recording {
  const path = join(dir, `record-${process.pid}-${++n}.log`);
  const lines = () =>
    existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  const signals = () => lines().filter((l) => l.startsWith('SIG'));
  const count = (sig: string) => signals().filter((l) => l === sig).length;
  return {
    path,
    lines,
    signals,
    count,
    ready: () =>
      waitFor(() => {
        const line = lines().find((l) => l.startsWith('ready '));
        if (!line) return undefined;
        const [, pid, parent, pgrp, ignored] = line.split(' ');
        return {
          pid: Number(pid),
          parent: Number(parent),
          pgrp: Number(pgrp),
          ignored: BigInt(`0x${ignored || '0'}`),
        };
      }, 'the recorder to start'),
    waitCount: async (sig, want = 1) => {
      await waitFor(() => (count(sig) >= want ? true : undefined), `${sig} at the recorder`);
    },
    stop: () => writeFileSync(`${path}.stop`, ''),
  };
}

/** Whether the mask has signal `sig` (a number) set. */
export function masked(mask: bigint, sig: number): boolean {
  return ((mask >> BigInt(sig - 1)) & 1n) === 1n;
}

export const gone = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /\) [ZX] /.test(stat);
  } catch {
    return true;
  }
};
