/**
 * The broker's notion of now. Injected so tests can move time past a pending TTL or a credential
 * window without sleeping; token verification, expiry and minting all read the same clock.
 */
export interface ServerClock {
  now(): number;
}

export const systemClock: ServerClock = { now: () => Date.now() };
