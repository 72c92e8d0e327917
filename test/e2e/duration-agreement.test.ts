import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';
import { durationFlag } from '../../src/cli/request-flow.js';
import { http, startTestBroker, type TestBroker } from '../support/broker.js';

/**
 * The CLI checks `--for` locally so that a typo never reaches the broker; that is only right if
 * the CLI accepts exactly what the broker accepts. Generated strings go both ways: through the
 * CLI's check, and over HTTP to a real broker as a request's duration. They must agree, and the
 * CLI's check must never throw anything but a usage error.
 */

const POLICY = `
roles:
  any-length:
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 7d
    pending_ttl: 1h
    credential:
      audience: https://any.example.com
`;

let broker: TestBroker;
let token: string;

beforeAll(async () => {
  // Hundreds of requests from one person on purpose: the broker's write limit would answer 429.
  broker = await startTestBroker({ policy: POLICY, settings: { rate_limits: 'off' } });
  token = await broker.issuer.token({ sub: 'alice', name: 'Alice', groups: ['developers'] });
});
afterAll(async () => {
  await broker?.close();
});

/** Whether the CLI lets `value` through as `--for`. */
function cliAccepts(value: string): boolean {
  try {
    durationFlag('--for', value);
    return true;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return false;
  }
}

/** Whether the broker takes `value` as a duration (a duration over the role's maximum parsed fine). */
async function brokerAccepts(value: string): Promise<boolean> {
  const r = await http<{ id?: string; error?: { code: string } }>(
    broker.url,
    'POST',
    '/v1/requests',
    {
      token,
      body: { role: 'any-length', duration: value },
    },
  );
  if (r.status === 201) {
    // Withdrawn at once: one person may have only a few pending requests (max_pending).
    await http(broker.url, 'POST', `/v1/requests/${r.body.id}/cancel`, { token, body: {} });
    return true;
  }
  expect(r.status, r.text).toBe(400);
  const code = r.body.error?.code;
  if (code === 'duration_too_long') return true;
  expect(['invalid_duration', 'bad_request']).toContain(code);
  return false;
}

const unit = fc.constantFrom('d', 'h', 'm', 's', 'ms', 'M', 'H', 'w', 'y', '');
/** Strings that look like durations, right and wrong: digits and unit letters in any order. */
const durationLike = fc
  .array(fc.tuple(fc.oneof(fc.nat(99), fc.nat(9_999_999), fc.constant(0)), unit), {
    minLength: 1,
    maxLength: 5,
  })
  .chain((parts) =>
    fc
      .constantFrom('', ' ', '-', '+', '.5', '\t', '\u0000')
      .map((noise) => parts.map(([n, u]) => `${n}${u}`).join('') + noise),
  );

describe('--for: the CLI and the broker agree', () => {
  it('on generated strings, duration-like and arbitrary', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          durationLike,
          fc.string({ maxLength: 40 }),
          fc.constantFrom(
            '15m',
            '1h30m',
            '90s',
            '2d',
            '7d',
            '8d',
            '0s',
            '00m',
            '999999d',
            'x'.repeat(40),
          ),
        ),
        async (value) => {
          expect(cliAccepts(value), JSON.stringify(value)).toBe(await brokerAccepts(value));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the CLI check never throws anything but a usage error, and says what durations look like', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60, unit: 'binary' }), (value) => {
        try {
          durationFlag('--for', value);
        } catch (err) {
          expect(err).toBeInstanceOf(UsageError);
          expect((err as UsageError).exitCode).toBe(2);
          expect((err as UsageError).message).toMatch(/^`--for .*`/s);
          // The flag's own text is shown escaped: no raw control characters on the terminal.
          expect((err as UsageError).message).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
