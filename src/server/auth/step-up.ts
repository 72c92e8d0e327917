import { formatDuration } from '../../api/duration.js';
import { ErrorCode } from '../../api/errors.js';
import { formatStepUpChallenge } from '../../api/step-up.js';
import { HttpError } from '../errors.js';
import type { Caller, StepUpRule } from '../policy/types.js';

/**
 * RFC 9470 step-up: an action that needs a stronger or fresher sign-in answers 401 with
 * `WWW-Authenticate: Bearer error="insufficient_user_authentication", acr_values=…, max_age=…`
 * and the CLI signs in again with those parameters. `acr` values are ranked by the broker's
 * `acr_levels` (weakest first); an acr the list does not know ranks below all of them, so an
 * unexpected value from the identity provider never passes for a strong one.
 */
export function rankOf(acr: string | null, levels: readonly string[]): number {
  return acr === null ? -1 : levels.indexOf(acr);
}

function acrStrongEnough(acr: string | null, rule: StepUpRule, levels: readonly string[]): boolean {
  const required = rankOf(rule.acr, levels);
  // A required acr outside the ranking can only be met by that exact value.
  return required === -1 ? acr === rule.acr : rankOf(acr, levels) >= required;
}

/** Whether `caller` meets `rule` at `nowMs`. */
export function meetsStepUp(
  caller: Pick<Caller, 'acr' | 'authTime'>,
  rule: StepUpRule,
  levels: readonly string[],
  nowMs: number,
): { ok: true } | { ok: false; why: string } {
  if (!acrStrongEnough(caller.acr, rule, levels)) {
    return {
      ok: false,
      why: `this needs a sign-in of level "${rule.acr}"${caller.acr ? ` (yours is "${caller.acr}")` : ''}`,
    };
  }
  if (caller.authTime === null) {
    return {
      ok: false,
      why: 'this needs a recent sign-in, and your token does not say when you signed in (no auth_time)',
    };
  }
  // One second of slack for the identity provider's clock rounding auth_time.
  const age = nowMs - caller.authTime * 1000;
  // Verifiers refuse tokens dated in the future; a sign-in "from the future" is never fresh.
  if (age < -30_000) {
    return {
      ok: false,
      why: 'this needs a recent sign-in, and your token says you signed in in the future (auth_time)',
    };
  }
  if (age > rule.maxAgeMs + 1000) {
    return {
      ok: false,
      why: `this needs a sign-in within the last ${formatDuration(rule.maxAgeMs)} (yours was ${formatDuration(age)} ago)`,
    };
  }
  return { ok: true };
}

/** The acr values that satisfy `rule`: the required level and every stronger one (RFC 9470 §3). */
export function acceptableAcrValues(rule: StepUpRule, levels: readonly string[]): string {
  const i = levels.indexOf(rule.acr);
  return i === -1 ? rule.acr : levels.slice(i).join(' ');
}

/** Throws the 401 challenge unless `caller` meets `rule`. */
export function requireStepUp(
  caller: Caller,
  rule: StepUpRule | null,
  levels: readonly string[],
  nowMs: number,
  action: string,
): void {
  if (!rule) return;
  const result = meetsStepUp(caller, rule, levels, nowMs);
  if (result.ok) return;
  if (caller.workload) {
    // A pipeline cannot sign in again with MFA: a challenge would only make it fail later.
    throw new HttpError(
      403,
      ErrorCode.Forbidden,
      `${action}: ${result.why}; a pipeline session cannot step up`,
      !acrStrongEnough(caller.acr, rule, levels)
        ? `operators: mark trusted issuer \`${caller.workload.entry}\` with \`acr: ${rule.acr}\` only if its tokens prove a person's approval (e.g. a protected deployment environment); otherwise a person requests this role`
        : 'exchange a fresh CI token (`jitctl login --federated-token`) and ask again',
    );
  }
  const maxAge = Math.floor(rule.maxAgeMs / 1000);
  throw new HttpError(
    401,
    ErrorCode.InsufficientUserAuthentication,
    `${action}: ${result.why}`,
    'sign in again with MFA (`jitctl login`); jitctl does this for you when it can prompt',
    {
      'www-authenticate': formatStepUpChallenge({
        acrValues: acceptableAcrValues(rule, levels),
        maxAge,
        description: result.why,
      }),
    },
  );
}

/**
 * The strongest of `rules` by `levels` (weakest first): what one sign-in must reach so that none
 * of them asks for another right after it. A rule whose acr is outside the ranking counts only
 * when no ranked rule exists (it can be met by that exact value alone).
 */
export function strongestStepUp(
  rules: readonly StepUpRule[],
  levels: readonly string[],
): StepUpRule | null {
  let best: StepUpRule | null = null;
  for (const rule of rules) {
    if (best === null || rankOf(rule.acr, levels) > rankOf(best.acr, levels)) best = rule;
  }
  return best;
}
