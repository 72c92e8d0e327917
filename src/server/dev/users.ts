import { createHash, timingSafeEqual } from 'node:crypto';
import { TOTP, Secret as TotpSecret } from 'otpauth';
import type { DevUser } from './types.js';

/**
 * The demo people of `jitctl server --dev`. Their passwords and TOTP secrets are fixed and printed
 * by the broker's banner on purpose: demos, the scripted tour and tests compute one-time codes
 * from them. Nothing here is a secret, which is why --dev refuses non-loopback addresses.
 */
export const DEV_USERS: readonly DevUser[] = Object.freeze([
  {
    username: 'alice',
    password: 'alice-dev-password',
    totpSecret: 'K6ER3JMAEPMUMFLMKOT6DH2ZVHNIL2MW',
    name: 'Alice Developer',
    email: 'alice@example.com',
    groups: ['developers'],
  },
  {
    username: 'bob',
    password: 'bob-dev-password',
    totpSecret: 'O2Z354KI2YA4ZHXSOITDOFJQP6LCYRJU',
    name: 'Bob Developer',
    email: 'bob@example.com',
    groups: ['developers'],
  },
  {
    username: 'lee',
    password: 'lee-dev-password',
    totpSecret: 'IXJ7DH7IQPNP3TL7JSHOKKE53C3TB7IH',
    name: 'Lee Lead',
    email: 'lee@example.com',
    groups: ['leads'],
  },
  {
    username: 'ada',
    password: 'ada-dev-password',
    totpSecret: 'S7C246EVQKW56J4A3AWZJWOOFYDISDHC',
    name: 'Ada Auditor',
    email: 'ada@example.com',
    groups: ['auditors'],
  },
]);

/** RFC 6238 with the parameters every authenticator app defaults to (SHA-1, 6 digits, 30 s). */
export function totpFor(user: Pick<DevUser, 'username' | 'totpSecret'>): TOTP {
  return new TOTP({
    issuer: 'jitctl dev',
    label: user.username,
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    secret: TotpSecret.fromBase32(user.totpSecret),
  });
}

/** The current one-time code of a user (what their authenticator app would show). */
export function currentTotp(
  user: Pick<DevUser, 'username' | 'totpSecret'>,
  now = Date.now(),
): string {
  return totpFor(user).generate({ timestamp: now });
}

/** The `otpauth://` URI an authenticator app can import (the banner may show it). */
export function totpUri(user: Pick<DevUser, 'username' | 'totpSecret'>): string {
  return totpFor(user).toString();
}

function sameText(a: string, b: string): boolean {
  // Hash first so the comparison takes the same time whatever the lengths.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export type PasswordCheck = { ok: true; user: DevUser } | { ok: false };

/**
 * Username (or email, which relying parties send as `login_hint`) and password; the same answer,
 * and the same work, for an unknown user and a wrong password.
 */
export function checkPassword(
  users: readonly DevUser[],
  username: string,
  password: string,
): PasswordCheck {
  const wanted = username.trim().toLowerCase();
  const user = users.find((u) => u.username === wanted || u.email.toLowerCase() === wanted);
  const ok = sameText(password, user?.password ?? '\u0000never a password');
  return user && ok ? { ok: true, user } : { ok: false };
}

/**
 * A one-time code, accepting the previous and next 30 s step for clock drift (RFC 6238 §5.2).
 * Codes are not remembered, so one may be used twice within its window: a development trade-off
 * that lets a test or the tour sign in and step up in quick succession.
 */
export function checkTotp(user: DevUser, code: string, now = Date.now()): boolean {
  const digits = code.replace(/\s+/g, '');
  if (!/^\d{6}$/.test(digits)) return false;
  return totpFor(user).validate({ token: digits, timestamp: now, window: 1 }) !== null;
}
