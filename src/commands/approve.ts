import type { Context } from '../cli/context.js';
import { JitError } from '../cli/errors.js';

export interface Options {
  [flag: string]: unknown;
}

export async function run(_options: Options, _ctx: Context): Promise<number | undefined> {
  throw new JitError('`jitctl approve` is not built yet');
}
