/**
 * Errors of the token endpoint, in RFC 6749 §5.2's shape (`{"error", "error_description"}`),
 * which OAuth clients and RFC 8693 tooling expect there instead of the API's own error object.
 * The description says which check failed; it never quotes the token.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_grant'
  | 'invalid_target'
  | 'invalid_scope'
  | 'unsupported_grant_type'
  | 'temporarily_unavailable'
  | 'server_error'
  /** 429: a rate limit (docs/operations.md "Rate limits"); an extension code, with Retry-After. */
  | 'rate_limited';

export class OAuthError extends Error {
  override name = 'OAuthError';
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status: number = error === 'temporarily_unavailable'
      ? 503
      : error === 'server_error'
        ? 500
        : 400,
    readonly headers: Record<string, string> = error === 'temporarily_unavailable'
      ? { 'retry-after': '2' }
      : {},
  ) {
    super(description);
  }

  toBody(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

export const invalidGrant = (why: string) => new OAuthError('invalid_grant', why);
export const invalidRequest = (why: string) => new OAuthError('invalid_request', why);
