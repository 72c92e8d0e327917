import { type Context, hasBrowser } from '../cli/context.js';
import { UsageError } from '../cli/errors.js';
import type { SessionRecord } from '../credentials/records.js';
import { type AuthorizationParams, deviceFlow } from './device-flow.js';
import { browserFlow } from './loopback-flow.js';
import { discover, type IdpSettings, sessionFromTokens } from './oidc.js';

/**
 * One interactive sign-in at the broker's identity provider, by whichever flow fits the machine,
 * ending in a verified session record (not yet stored). Used by `jitctl login` and by step-up.
 * A second kind of login (`--federated-token`, RFC 8693, issue #5) produces the same record
 * with `kind: 'federated'` from its own module; nothing here needs to change for it.
 */

export type FlowChoice = 'auto' | 'device' | 'browser';

export interface StepUpRequest {
  /** Acceptable acr values (any one satisfies), from the RFC 9470 challenge. */
  acrValues: string[];
  /** Seconds, ≥ 1. */
  maxAge?: number | undefined;
}

export interface SignInOptions {
  flow: FlowChoice;
  /** Open a browser where one exists (`--no-open`: false). */
  open: boolean;
  /** "To sign in to https://jit.example.com": the first words of the instructions. */
  heading: string;
  stepUp?: StepUpRequest | undefined;
  /** Pre-fills the username at the provider (OIDC Core §3.1.2.1). */
  loginHint?: string | undefined;
}

/**
 * Device flow in CI, over SSH and where no browser can be shown (kubelogin's and gh's rule);
 * the loopback browser flow otherwise. An explicit `--device`/`--browser` wins.
 */
export function chooseFlow(
  ctx: Context,
  requested: FlowChoice,
  deviceFlowOffered: boolean,
): 'device' | 'browser' {
  if (requested === 'device') {
    if (!deviceFlowOffered) {
      throw new UsageError("the broker's identity provider does not offer the device flow", {
        hint: 'sign in with `jitctl login --browser` on a machine with a browser',
      });
    }
    return 'device';
  }
  if (requested === 'browser') return 'browser';
  const remote = ctx.ci || Boolean(ctx.env.SSH_CONNECTION || ctx.env.SSH_TTY);
  if (deviceFlowOffered && (remote || !hasBrowser(ctx.env))) return 'device';
  return 'browser';
}

/**
 * The authorization parameters. Step-up asks for the acr as an essential claim (OIDC Core
 * §5.5.1.1), not through `acr_values`, which is only a preference a provider may ignore and which
 * does not make it re-authenticate an existing session; `max_age` forces a fresh sign-in.
 */
export function authorizationParams(
  idp: IdpSettings,
  opts: Pick<SignInOptions, 'stepUp' | 'loginHint'>,
): AuthorizationParams {
  const params: AuthorizationParams = { scope: idp.scopes.join(' ') };
  if (opts.stepUp) {
    if (opts.stepUp.acrValues.length > 0) {
      params.claims = JSON.stringify({
        id_token: { acr: { essential: true, values: opts.stepUp.acrValues } },
      });
    }
    if (opts.stepUp.maxAge !== undefined)
      params.max_age = String(Math.max(1, Math.floor(opts.stepUp.maxAge)));
  }
  if (opts.loginHint) params.login_hint = opts.loginHint;
  return params;
}

export async function signIn(
  ctx: Context,
  idp: IdpSettings,
  opts: SignInOptions,
): Promise<SessionRecord> {
  if (!idp.scopes.includes('openid')) {
    throw new UsageError(
      `the broker asks for scopes without \`openid\` (${idp.scopes.join(' ')})`,
      {
        hint: 'the broker must be configured with the openid scope',
      },
    );
  }
  const flow = chooseFlow(ctx, opts.flow, idp.deviceFlow);
  const config = await discover(ctx.env, idp);
  const params = authorizationParams(idp, opts);
  const flowOptions = { open: opts.open, heading: opts.heading };
  const tokens =
    flow === 'device'
      ? await deviceFlow(ctx, config, idp.issuer, params, flowOptions)
      : await browserFlow(ctx, config, idp.issuer, params, flowOptions);
  return sessionFromTokens(idp, tokens);
}
