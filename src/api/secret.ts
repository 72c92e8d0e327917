import { inspect } from 'node:util';

const REDACTED = '[REDACTED]';

/**
 * Holds a secret (token, passphrase, client secret) so that every accidental way of printing it
 * (template strings, JSON.stringify, console/pino/util.inspect, error messages) shows
 * `[REDACTED]`. Only {@link Secret.reveal} returns the value, which makes each real use greppable.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  /** A masked form for humans (`jitctl status`): the last four characters only. */
  masked(): string {
    return mask(this.#value);
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

/** `••••••••abcd`: enough to tell two tokens apart, never enough to use one. */
export function mask(value: string): string {
  if (value.length < 16) return '••••••••';
  return `••••••••${value.slice(-4)}`;
}

export { REDACTED };
