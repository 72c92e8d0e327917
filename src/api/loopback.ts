/**
 * Whether a URL's `hostname` is this machine, where plain http is allowed (tests, development).
 * One rule for the CLI and the broker. 127.x must be a whole address: `127.evil.example` is a
 * domain name like any other.
 */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}
