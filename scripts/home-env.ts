import { join } from 'node:path';

/**
 * The environment of a jitctl process that lives in its own home `dir`: config, data (the file
 * store) and state under it, a plain terminal, nothing of the caller's but PATH. Used by the
 * tests, the benchmarks and the tour, so that none of them touches the user's own jitctl.
 */
export function homeEnv(dir: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_STATE_HOME: join(dir, 'state'),
    LANG: 'C.UTF-8',
  };
}
