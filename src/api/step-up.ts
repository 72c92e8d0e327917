/**
 * RFC 9470 (OAuth 2.0 Step Up Authentication Challenge): the broker's 401 challenge and its
 * parsing on the client. One module so both halves read and write the same header.
 */

export interface StepUpChallenge {
  /** Space-separated acr values, any of which satisfies the resource (RFC 9470 §3). */
  acrValues?: string;
  /** Seconds since the last active authentication the resource accepts. */
  maxAge?: number;
  description?: string;
}

export const INSUFFICIENT_USER_AUTHENTICATION = 'insufficient_user_authentication';

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ')}"`;
}

/** The `WWW-Authenticate` value for a step-up challenge (RFC 9470 §3, RFC 6750 §3). */
export function formatStepUpChallenge(c: StepUpChallenge): string {
  const params = [`error=${quote(INSUFFICIENT_USER_AUTHENTICATION)}`];
  if (c.description) params.push(`error_description=${quote(c.description)}`);
  if (c.acrValues) params.push(`acr_values=${quote(c.acrValues)}`);
  if (c.maxAge !== undefined) params.push(`max_age=${Math.max(0, Math.floor(c.maxAge))}`);
  return `Bearer ${params.join(', ')}`;
}

/** Parses auth-params of a `Bearer` challenge; tolerates quoted and token values. */
export function parseBearerChallenge(
  header: string | undefined | null,
): Record<string, string> | undefined {
  if (!header) return undefined;
  const m = /^\s*Bearer\b\s*(.*)$/is.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*,?\s*/gy;
  const rest = m[1] ?? '';
  while (re.lastIndex < rest.length) {
    const match = re.exec(rest);
    if (match === null) break;
    const key = match[1]!.toLowerCase();
    params[key] = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] ?? '');
  }
  return params;
}

/** The step-up challenge in a `WWW-Authenticate` header, or undefined if it is not one. */
export function parseStepUpChallenge(
  header: string | undefined | null,
): StepUpChallenge | undefined {
  const p = parseBearerChallenge(header);
  if (!p || p.error !== INSUFFICIENT_USER_AUTHENTICATION) return undefined;
  const out: StepUpChallenge = {};
  if (p.acr_values) out.acrValues = p.acr_values;
  if (p.max_age !== undefined && /^\d+$/.test(p.max_age)) out.maxAge = Number(p.max_age);
  if (p.error_description) out.description = p.error_description;
  return out;
}
