import { createHash } from 'node:crypto';
import { canonicalJson } from '../../api/audit-chain.js';
import { ErrorCode } from '../../api/errors.js';
import type { AccessRequest, CreateRequestBody } from '../../api/schemas.js';
import { requireStepUp } from '../auth/step-up.js';
import { HttpError } from '../errors.js';
import { judgeRules } from '../policy/judge-rules.js';
import type { Caller } from '../policy/types.js';
import { isUniqueViolation } from '../store/database.js';
import { filingCounts, findByIdempotencyKey, getReviews } from '../store/requests.js';
import type { RequestRow } from '../store/schema.js';
import type { RequestCore } from './core.js';
import { newRequestId } from './ids.js';
import { checkFiling, checkLimits, onFile, publishedOf } from './lifecycle/index.js';
import { toWire } from './wire.js';
import type { Written } from './writer.js';

/**
 * Filing a request (`POST /v1/requests`): the rules' checks, cheapest first and step-up last, then
 * one transaction that inserts it with its events. An `Idempotency-Key` makes a retried POST
 * answer the request it already filed (or 422 when the body differs).
 */
export async function fileRequest(
  core: RequestCore,
  caller: Caller,
  body: CreateRequestBody,
  idempotencyKey: string | undefined,
  requestable: () => string[],
): Promise<{ request: AccessRequest; replayed: boolean }> {
  const now = core.now();
  const role = core.role(body.role);
  const filing = checkFiling(role, body.role, caller, body, requestable, now);
  const r = role!;
  // An access review's removal stops the filing before any step-up is asked for.
  const refused = await core.deps.refusal?.(caller, r);
  if (refused) throw refused;
  requireStepUp(caller, r.stepUp, core.deps.access.acrLevels, now, `requesting ${r.name}`);
  // Rules judge the access's start, and the on-call list as the broker last read it.
  const { decided } = judgeRules(r, {
    caller,
    durationMs: filing.durationMs,
    ticket: body.ticket ?? null,
    at: filing.startsAt ?? now,
    onCall: core.deps.onCall?.has(caller) ?? false,
  });

  const bodyHash = createHash('sha256')
    .update(
      canonicalJson({
        role: body.role,
        duration: body.duration ?? null,
        reason: body.reason ?? null,
        ticket: body.ticket ?? null,
        // Only when given, so keys of earlier bodies still match.
        ...(body.starts_at !== undefined ? { starts_at: body.starts_at } : {}),
        ...(body.break_glass !== undefined ? { break_glass: body.break_glass } : {}),
      }),
    )
    .digest('hex');
  const replay = (existing: RequestRow) => {
    if (existing.idempotency_hash !== bodyHash) {
      throw new HttpError(
        422,
        ErrorCode.IdempotencyKeyReused,
        'this Idempotency-Key was already used for a different request',
        'use a new Idempotency-Key for each new request',
      );
    }
  };

  const { writer } = core;
  const run = () =>
    writer.transaction(async (tx): Promise<Written | null> => {
      if (idempotencyKey !== undefined) {
        const existing = await findByIdempotencyKey(tx, caller.iss, caller.sub, idempotencyKey);
        if (existing) {
          replay(existing);
          return null;
        }
      }
      const counts = await filingCounts(
        tx,
        core.deps.db.dialect,
        caller,
        r.name,
        now - 7 * 24 * 3_600_000,
        filing.breakGlass,
      );
      try {
        checkLimits(r, filing, counts, now);
      } catch (err) {
        core.deps.metrics.limitRefusals.inc({
          limit: filing.breakGlass ? 'break_glass_per_week' : 'max_pending',
          role: r.name,
        });
        throw err;
      }
      const { change } = onFile(
        {
          id: newRequestId(),
          role: r,
          caller,
          filing,
          ticket: body.ticket ?? null,
          idempotency:
            idempotencyKey !== undefined ? { key: idempotencyKey, hash: bodyHash } : null,
          rule: decided,
        },
        now,
      );
      const row = await writer.commit(tx, null, change, now);
      return { row, reviews: [], events: publishedOf(change) };
    });

  let written: Written | null;
  try {
    written = await run();
  } catch (err) {
    // Two retries with one key racing on PostgreSQL: the loser reads the winner's request.
    if (idempotencyKey === undefined || !isUniqueViolation(err)) throw err;
    written = null;
  }
  if (written === null) {
    const db = core.deps.db.kysely;
    const existing = await findByIdempotencyKey(db, caller.iss, caller.sub, idempotencyKey!);
    if (!existing) throw new Error('idempotent request vanished');
    replay(existing);
    const fresh = await core.settle(existing);
    return { request: toWire(fresh, await getReviews(db, fresh.id)), replayed: true };
  }
  core.deps.metrics.requestsCreated.inc({ role: r.name });
  writer.published(written);
  return { request: toWire(written.row, written.reviews), replayed: false };
}
