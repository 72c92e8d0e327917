import type { FastifyRequest } from 'fastify';
import { badRequest } from '../errors.js';

/**
 * Query strings and empty bodies, checked by hand: ajv runs without type coercion (so bodies stay
 * strict), and query values are always strings, so these few parameters are parsed here with
 * messages that name them.
 */
export function queryOf<K extends string>(
  req: FastifyRequest,
  allowed: readonly K[],
): Partial<Record<K, string>> {
  const query = (req.query ?? {}) as Record<string, unknown>;
  const out: Partial<Record<K, string>> = {};
  for (const [name, value] of Object.entries(query)) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw badRequest(
        `unknown query parameter \`${name.slice(0, 64)}\``,
        allowed.length > 0
          ? `this endpoint takes ${allowed.join(', ')}`
          : 'this endpoint takes none',
      );
    }
    if (typeof value !== 'string') throw badRequest(`give \`${name}\` once`);
    out[name as K] = value;
  }
  return out;
}

/** Action endpoints (cancel, revoke, credential) take no fields: nothing, `{}` or `null`. */
export function emptyBody(req: FastifyRequest): void {
  const body = req.body;
  if (body === undefined || body === null) return;
  if (typeof body !== 'object' || Array.isArray(body))
    throw badRequest('the body must be a JSON object ({})');
  const keys = Object.keys(body);
  if (keys.length > 0)
    throw badRequest(
      `unexpected field \`${keys[0]!.slice(0, 64)}\``,
      'this endpoint takes no fields; send {}',
    );
}

/** A whole-number query parameter from `min` to `max` (MAX_SAFE_INTEGER: no upper bound). */
export function wholeNumber(text: string, name: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(text) || Number(text) < min || Number(text) > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of ${min} or more` : `from ${min} to ${max}`;
    throw badRequest(`\`${name}\` must be a whole number ${range}`);
  }
  return Number(text);
}

/**
 * A body that is nothing, `{}`, `null`, or an object with only these optional text fields (e.g.
 * revoke's `reason`): the action endpoints that take a note. Returns the fields given.
 */
export function optionalTextBody<K extends string>(
  req: FastifyRequest,
  fields: Record<K, number>,
): Partial<Record<K, string>> {
  const body = req.body;
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw badRequest('the body must be a JSON object ({})');
  const out: Partial<Record<K, string>> = {};
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    if (!Object.hasOwn(fields, key))
      throw badRequest(
        `unexpected field \`${key.slice(0, 64)}\``,
        `this endpoint takes ${Object.keys(fields).join(', ')}`,
      );
    const max = fields[key as K];
    if (typeof value !== 'string') throw badRequest(`\`${key}\` must be a string`);
    if (value.length > max) throw badRequest(`\`${key}\` is longer than ${max} characters`);
    out[key as K] = value;
  }
  return out;
}
