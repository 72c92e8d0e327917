/**
 * What `jitctl revoke --help` says about where a revocation takes effect and how fast: the same
 * table as docs/credentials.md "Revocation" (a test keeps them in agreement with what is built).
 */
export const REVOKE_DESCRIPTION =
  'end an approved grant now: no credential is minted for it again, jitctl exec/shell commands ' +
  'running under it are ended, services that introspect refuse it at once';

export const REVOKE_HELP = `
Where a revocation takes effect, and how fast (docs/credentials.md "Revocation"):
  jitctl exec/shell running under the grant   within a second (they follow the grant)
  jitctl credential/exec/shell/status         at their next run (they ask the broker)
  services that introspect (RFC 7662)         at their next question
  services following GET /v1/revocations      within a second (long poll)
  services that only check the signature      when the last credential expires: at most the
                                              role's credential.ttl (15m unless the role says)
`;
