import type { BreakGlassReviewBody, ExtendBody, ReviewBody } from '../../../api/schemas.js';
import type { RolePolicy } from '../../policy/types.js';
import type { RequestRow, ReviewRow } from '../../store/schema.js';
import { onAcknowledge } from './break-glass.js';
import type { Change } from './change.js';
import { onCancel, onRevoke, type RevokeDetails } from './ending.js';
import { onExtend } from './extending.js';
import { type Minted, onMint } from './minting.js';
import { onReview } from './review.js';
import { expiredError, settle } from './time.js';
import type { Who } from './who.js';

/**
 * The rules of the lifecycle as pure functions over (request, reviews, who, policy, now), in the
 * manner of Teleport's `ApplyAccessReview`: no I/O, so the service calls them on a row it read
 * (to refuse early, before a step-up sign-in) and again on the row it locked for update (where
 * the answer counts), and property tests call them on random histories. Each returns a
 * {@link Change} naming its row of the transition table (table.ts), or throws the HttpError the
 * caller gets.
 */

/** An event a person causes (time's own events are {@link settle}'s). */
export type PersonEvent =
  | { kind: 'review'; who: Who; body: ReviewBody }
  | { kind: 'cancel'; who: Who }
  | { kind: 'revoke'; who: Who; details?: RevokeDetails }
  | { kind: 'mint'; who: Who; minted: Minted }
  | { kind: 'extend'; who: Who; body: ExtendBody }
  | { kind: 'acknowledge'; who: Who; body: BreakGlassReviewBody };

/**
 * What `event` does to a request whose time is settled (call {@link settle} first and apply what
 * it returns: when that ends the request, the event is refused with {@link expiredError}).
 * `unchanged` for a repeat of what already happened (cancelling a cancelled request).
 */
export function decide(
  row: RequestRow,
  reviews: readonly ReviewRow[],
  event: PersonEvent,
  role: RolePolicy | undefined,
  now: number,
): Change | 'unchanged' {
  switch (event.kind) {
    case 'review':
      return onReview(row, reviews, event.who, event.body, role, now);
    case 'extend':
      return onExtend(row, role, event.who, event.body, now);
    case 'acknowledge':
      return onAcknowledge(row, role, event.who, event.body, now);
    case 'cancel':
      return onCancel(row, event.who, now);
    case 'revoke':
      return onRevoke(row, event.who, now, event.details);
    case 'mint':
      return onMint(row, reviews, event.who, event.minted, now);
  }
}
