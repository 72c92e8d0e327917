import type { Context } from '../cli/context.js';
import { type ReviewOptions, review } from '../cli/review-flow.js';

/**
 * `jitctl approve <id> [--comment TEXT] [--fingerprint F] [--yes] [--json]`: show the whole request,
 * confirm, and approve it. Reviewing needs a fresh strong sign-in: the broker asks for it (RFC 9470)
 * and the session steps up on its own before the review is sent again. Without a terminal
 * `--yes` is required (exit 2). `--json` prints the request after the review.
 */
export type Options = ReviewOptions;

export function run(options: Options, ctx: Context): Promise<number> {
  return review(ctx, 'approve', options);
}
