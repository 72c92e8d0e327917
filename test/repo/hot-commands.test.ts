import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { HOT_COMMANDS } from '../../src/cli/program-only.js';

// bin/jitctl.js runs the hot commands from dist/cli.cjs (which tsup.config.ts builds with only
// them) and every other command from dist/cli.js: a command on one list and not the other would
// either miss its fast start or reach a stub that cannot run it.
describe('the hot commands', () => {
  it('are the same in the launcher and in the program', () => {
    const launcher = createRequire(import.meta.url)('../../bin/compile-cache.js') as {
      HOT_COMMANDS: string[];
    };
    expect([...launcher.HOT_COMMANDS].sort()).toEqual([...HOT_COMMANDS].sort());
  });
});
