import { docPath } from '../api/docs.js';
import { formatDuration } from '../api/duration.js';
import type { StepUpChallenge } from '../api/step-up.js';
import type { Context } from '../cli/context.js';
import { AuthError } from '../cli/errors.js';
import { safe, style } from '../cli/output.js';
import type { SessionRecord } from '../credentials/records.js';
import { fetchIdpSettings } from './broker-config.js';
import { type StepUpRequest, signIn } from './sign-in.js';

/**
 * Step-up (RFC 9470): the broker said the session's authentication is too weak or too old for
 * this call. Sign in again asking for what it named, and check the answer before anyone relies
 * on it: same person, an acceptable acr, a fresh auth_time.
 */

/** Seconds of clock difference tolerated between this machine and the identity provider. */
const CLOCK_SKEW_S = 60;

export function stepUpRequest(challenge: StepUpChallenge): StepUpRequest {
  const acrValues = (challenge.acrValues ?? '').split(/\s+/).filter(Boolean);
  return {
    acrValues,
    maxAge: challenge.maxAge === undefined ? undefined : Math.max(1, challenge.maxAge),
  };
}

/** "lee: approving needs a fresh MFA sign-in (mfa within 5m)" */
export function stepUpReason(session: SessionRecord, request: StepUpRequest, why: string): string {
  const who = safe(session.identity.name ?? session.identity.sub);
  const wanted = [
    request.acrValues.length > 0 ? request.acrValues.map((a) => safe(a)).join(' or ') : undefined,
    request.maxAge !== undefined ? `within ${formatDuration(request.maxAge * 1000)}` : undefined,
  ].filter(Boolean);
  const reason = safe(why.trim()) || 'the broker asks for a stronger sign-in';
  return `${who}: ${reason}${wanted.length > 0 ? ` (${wanted.join(' ')})` : ''}`;
}

export async function stepUpSession(
  ctx: Context,
  server: string,
  current: SessionRecord,
  challenge: StepUpChallenge,
  why: string,
): Promise<SessionRecord> {
  if (current.kind !== 'oidc') {
    throw new AuthError(`this pipeline session cannot sign in interactively: ${safe(why)}`, {
      hint: 'the role needs a person with MFA; a pipeline cannot step up',
    });
  }
  if (ctx.ci) {
    // A step-up is a sign-in at the identity provider: in CI nobody is there to complete it,
    // and a device code nobody enters would hold the job until the code expires.
    throw new AuthError(
      `this needs a fresh sign-in, and CI=true means nobody is here to do it: ${safe(why)}`,
      {
        hint: `pipelines sign in with \`jitctl login --federated-token\` (${docPath('pipelines.md')}); to sign in as a person, run jitctl outside CI`,
      },
    );
  }
  const request = stepUpRequest(challenge);
  const idp = await fetchIdpSettings(ctx, server);
  if (idp.issuer !== current.issuer || idp.clientId !== current.clientId) {
    throw new AuthError(`the broker at ${server} now uses another identity provider`, {
      hint: `run \`jitctl login --server ${server}\``,
    });
  }
  ctx.io.err(`${style(ctx.io, 'yellow', '!')} ${stepUpReason(current, request, why)}\n`);
  const next = await signIn(ctx, idp, {
    flow: 'auto',
    open: true,
    heading: 'To continue, sign in again',
    stepUp: request,
    loginHint: current.identity.email ?? current.identity.sub,
  });
  if (next.identity.sub !== current.identity.sub || next.identity.iss !== current.identity.iss) {
    const other = safe(next.identity.name ?? next.identity.sub);
    const mine = safe(current.identity.name ?? current.identity.sub);
    throw new AuthError(
      `you signed in as ${other}, but this session is ${mine}'s; nothing was changed`,
      {
        hint: `sign in as ${mine}, or run \`jitctl login\` to switch people`,
      },
    );
  }
  if (request.acrValues.length > 0 && !request.acrValues.includes(next.acr ?? '')) {
    throw new AuthError(
      `the sign-in reached ${safe(next.acr ?? 'no acr')} but ${request.acrValues.map((a) => safe(a)).join(' or ')} is needed`,
      { hint: 'sign in again with your second factor (the one-time code)' },
    );
  }
  if (request.maxAge !== undefined) {
    const oldest = ctx.clock.now() - (request.maxAge + CLOCK_SKEW_S) * 1000;
    if (next.authTime === null || next.authTime < oldest) {
      throw new AuthError('the identity provider did not sign you in afresh', {
        hint: 'sign out at the identity provider in your browser, then try again',
      });
    }
  }
  return next;
}
