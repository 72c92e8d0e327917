import type { CredentialResponse, Identity } from '../../api/schemas.js';
import { type SignedCredential, signCredential } from '../mint/credential.js';
import { renderEnv } from '../policy/env-template.js';
import { useSettings } from '../policy/role-use.js';
import type { Caller, RolePolicy } from '../policy/types.js';
import {
  credentialExpiry,
  credentialTtlMs,
  recordCredential,
  usePolicyOf,
} from '../revocation/credentials.js';
import { getReviews } from '../store/requests.js';
import type { RequestRow, ReviewRow } from '../store/schema.js';
import type { RequestCore } from './core.js';
import { checkMinter, decide, expiredError, mintWindow } from './lifecycle/index.js';
import { etagOf, iso } from './wire.js';
import type { Written } from './writer.js';

/**
 * `POST /v1/requests/:id/credential`: a credential for the requester of an approved request,
 * signed so that it never outlives the window, handed out only after its audit event committed.
 */
export async function mintCredential(
  core: RequestCore,
  caller: Caller,
  id: string,
): Promise<CredentialResponse> {
  const row = await core.load(id);
  const role = checkMinter(row, core.role(row.role), core.who(row, caller));
  const db = core.deps.db.kysely;
  // Sign ahead, outside the write transaction: jose signs through WebCrypto's thread pool, and
  // inside the transaction each round trip would hold SQLite's only connection (PostgreSQL's
  // audit head lock). What is signed cannot change while the request stays approved (its
  // requester, role, window and approvers are set by the approval, which leaves it only for a
  // terminal state; the key and policy are fixed for the broker's life), so the signature is
  // good if the locked row is still approved with the same window. Otherwise it is signed inside.
  const reviewsAhead = row.state === 'approved' ? await getReviews(db, id) : undefined;
  const ahead = reviewsAhead ? await signFor(core, row, role, core.now(), reviewsAhead) : undefined;
  let minted: CredentialResponse | undefined;
  const { writer } = core;
  const written = await writer.transaction(async (tx): Promise<Written> => {
    const now = core.now();
    const settled = await writer.settleLocked(tx, await writer.lock(tx, id), now);
    if (settled.expiredInstead) return settled;
    const locked = settled.row;
    // Every review written changes the request's review count or revision (its ETag), so when
    // the locked row has the ETag of the row read ahead (read before its reviews), the reviews
    // read ahead are the reviews now.
    const reviews =
      reviewsAhead && etagOf(locked) === etagOf(row) ? reviewsAhead : await getReviews(tx, id);
    mintWindow(locked, reviews, now);
    const signed =
      ahead && ahead.windowEnd === locked.expires_at
        ? ahead
        : await signFor(core, locked, role, now, reviews);
    const who = core.who(locked, caller);
    const facts = {
      jti: signed.jti,
      audience: role.credential.audience,
      kid: signed.kid,
      issuedAt: signed.issuedAt,
      expiresAt: signed.expiresAt,
    };
    const change = decide(locked, reviews, { kind: 'mint', who, minted: facts }, role, now);
    if (change === 'unchanged') throw new Error('minting always changes something');
    await writer.commit(tx, locked, change, now);
    // With its audit event: a revocation names every credential that is still valid.
    await recordCredential(tx, {
      jti: signed.jti,
      request_id: id,
      role: locked.role,
      kid: signed.kid,
      audience: role.credential.audience,
      issued_at: signed.issuedAt * 1000,
      expires_at: signed.expiresAt * 1000,
    });
    const expiresIso = iso(signed.expiresAt * 1000);
    minted = {
      token: signed.token,
      token_type: 'Bearer',
      expires_at: expiresIso,
      env: renderEnv(role.credential.env, {
        token: signed.token,
        role: locked.role,
        request_id: id,
        expires_at: expiresIso,
      }),
      grant_expires_at: iso(locked.expires_at),
      jti: signed.jti,
      use: useSettings(usePolicyOf(role)),
    };
    return { ...settled, row: locked };
  });
  writer.published(written);
  if (written.expiredInstead) throw expiredError(written.row);
  core.deps.metrics.mints.inc({ role: role.name });
  // Only after the commit: a token whose audit event was rolled back is never handed out.
  return minted!;
}

type Signed = SignedCredential & {
  issuedAt: number;
  expiresAt: number;
  kid: string;
  /** The grant's end it was signed for (ms): the signature is good while the window is this. */
  windowEnd: number;
};

/**
 * Signs the credential of an approved request as of `now`: one lifetime of the role's
 * `credential.ttl`, never past the window.
 */
async function signFor(
  core: RequestCore,
  row: RequestRow,
  role: RolePolicy,
  now: number,
  reviews: ReviewRow[],
): Promise<Signed> {
  const issuedAt = Math.floor(now / 1000);
  const expiresAt = credentialExpiry(issuedAt, row.expires_at, credentialTtlMs(role));
  // The key of the moment: a rotation may land between signing and the audit event, which must
  // name the key that actually signed (key retirement reads it).
  const key = core.deps.keys.current;
  const signed = await signCredential(key, {
    issuer: core.deps.publicUrl,
    subject: row.requester_sub,
    subjectIssuer: row.requester_iss,
    audience: role.credential.audience,
    role: row.role,
    requestId: row.id,
    approvers: approversOf(reviews),
    issuedAt,
    expiresAt,
  });
  return { ...signed, issuedAt, expiresAt, kid: key.kid, windowEnd: row.expires_at };
}

const approversOf = (reviews: ReviewRow[]): Identity[] =>
  reviews
    .filter((r) => r.decision === 'approve')
    .map((r) => ({ iss: r.reviewer_iss, sub: r.reviewer_sub, name: r.reviewer_name }));
