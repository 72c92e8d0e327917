import { DurationError, formatDuration, parseDuration } from '../../api/duration.js';
import { isLoopbackHost } from '../../api/loopback.js';
import { closest } from '../policy/suggest.js';

/**
 * The `trusted_issuers` setting: external OpenID issuers (a CI platform's) whose tokens the broker
 * exchanges for a session of its own (RFC 8693, `POST /v1/token`). Each entry names the issuer,
 * the audience its tokens must carry, the claim conditions a token must meet, and the workload
 * identity (subject, groups) a matching token becomes.
 *
 * A CI platform's issuer is shared by every repository on it: anyone can get a GitHub Actions
 * token for any audience from their own repository. The conditions are what keep other
 * repositories out, so an entry without conditions is refused rather than trusting the world.
 */

/** A claim condition: the claim equals one of `values`, or matches the glob `pattern`. */
export type ClaimCondition =
  | { claim: string; kind: 'values'; values: string[] }
  | { claim: string; kind: 'pattern'; pattern: string; regex: RegExp };

/** Literal text and `{{claim}}` placeholders, in order. */
export type TemplatePart = { text: string } | { claim: string };

export interface TrustedIssuer {
  /** The entry's label in audit events, logs, errors and the workload's display name. */
  name: string;
  issuer: string;
  /** The `aud` the external token must carry (normally the broker's public URL). */
  audience: string;
  /** undefined: discovered from the issuer's `/.well-known/openid-configuration`. */
  jwksUri: string | undefined;
  algorithms: string[];
  conditions: ClaimCondition[];
  /** The workload's `sub`; null: the external token's own `sub`. */
  subject: TemplatePart[] | null;
  groups: string[];
  /** The acr a session from this entry counts as (for roles with `step_up`); null: none. */
  acr: string | null;
  sessionTtlMs: number;
}

/** Asymmetric algorithms only: HS* would let anyone holding the JWKS forge tokens, `none` anyone. */
export const EXTERNAL_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export const DEFAULT_ALGORITHMS = ['RS256', 'ES256'];
export const DEFAULT_SESSION_TTL_MS = 15 * 60_000;
const MIN_SESSION_TTL_MS = 60_000;
const MAX_SESSION_TTL_MS = 12 * 3_600_000;

/** Claims the broker checks itself: a condition on them would be meaningless or misleading. */
const RESERVED_CLAIMS = new Set(['iss', 'aud', 'exp', 'nbf', 'iat']);
const ENTRY_KEYS = [
  'name',
  'issuer',
  'audience',
  'jwks_uri',
  'algorithms',
  'conditions',
  'subject',
  'groups',
  'acr',
  'session_ttl',
] as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CLAIM = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;
const GROUP = /^[^\s,]{1,256}$/;

/** Thrown with the path of the offending key (`trusted_issuers[1].conditions.ref`) in `where`. */
export class TrustedIssuerError extends Error {
  override name = 'TrustedIssuerError';
  constructor(
    readonly where: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** https only (plain http on loopback, for tests and development), no query, fragment or userinfo. */
function parseUrl(v: unknown, where: string, what: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw new TrustedIssuerError(where, `must be ${what} (a URL)`);
  const text = v.trim();
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new TrustedIssuerError(where, `${JSON.stringify(text)} is not a URL`);
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname)))
    throw new TrustedIssuerError(where, `${text} must be an https:// URL`);
  if (u.search || u.hash || u.username || u.password)
    throw new TrustedIssuerError(where, `${text} must not have a query, fragment or credentials`);
  return text;
}

function parseString(v: unknown, where: string, what: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw new TrustedIssuerError(where, `must be ${what}`);
  return v.trim();
}

function parseScalar(v: unknown, where: string): string {
  if (
    typeof v === 'string' ||
    typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isFinite(v))
  )
    return String(v);
  throw new TrustedIssuerError(
    where,
    `must be a string, a list of strings or {pattern: "glob"}, not ${JSON.stringify(v)}`,
  );
}

/** `*` any run of characters (slashes included), `?` one character; everything else literal. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((c) =>
      c === '*' ? '[\\s\\S]*' : c === '?' ? '[\\s\\S]' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${body}$`);
}

function parseConditions(v: unknown, where: string): ClaimCondition[] {
  if (!isObject(v) || Object.keys(v).length === 0) {
    throw new TrustedIssuerError(
      where,
      'must list at least one claim condition',
      'the issuer of a CI platform is shared by every repository on it; e.g. for GitHub: ' +
        '{repository: acme/app, ref: refs/heads/main}',
    );
  }
  return Object.entries(v).map(([claim, value]): ClaimCondition => {
    const at = `${where}.${claim}`;
    if (!CLAIM.test(claim)) throw new TrustedIssuerError(at, 'is not a claim name');
    if (RESERVED_CLAIMS.has(claim))
      throw new TrustedIssuerError(
        at,
        `\`${claim}\` is checked by the broker itself (issuer, audience, expiry); remove this condition`,
      );
    if (isObject(value)) {
      const keys = Object.keys(value);
      if (keys.length !== 1 || keys[0] !== 'pattern')
        throw new TrustedIssuerError(at, 'a condition object takes one key: pattern');
      const pattern = parseString(value.pattern, `${at}.pattern`, 'a glob such as "refs/tags/v*"');
      return { claim, kind: 'pattern', pattern, regex: globToRegExp(pattern) };
    }
    if (Array.isArray(value)) {
      if (value.length === 0) throw new TrustedIssuerError(at, 'the list of values is empty');
      return { claim, kind: 'values', values: value.map((x, i) => parseScalar(x, `${at}[${i}]`)) };
    }
    return { claim, kind: 'values', values: [parseScalar(value, at)] };
  });
}

/** Parses `literal{{claim}}literal`; claims must be plain names, braces must pair. */
export function parseTemplate(text: string, where: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let rest = text;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    const close = rest.indexOf('}}');
    if (open === -1) {
      if (close !== -1) throw new TrustedIssuerError(where, 'has a `}}` without `{{`');
      parts.push({ text: rest });
      break;
    }
    if (open > 0) {
      if (close !== -1 && close < open)
        throw new TrustedIssuerError(where, 'has a `}}` without `{{`');
      parts.push({ text: rest.slice(0, open) });
    }
    const end = rest.indexOf('}}', open + 2);
    if (end === -1) throw new TrustedIssuerError(where, 'has a `{{` without `}}`');
    const claim = rest.slice(open + 2, end).trim();
    if (!CLAIM.test(claim))
      throw new TrustedIssuerError(where, `\`{{${claim}}}\` does not name a claim`);
    parts.push({ claim });
    rest = rest.slice(end + 2);
  }
  if (!parts.some((p) => 'claim' in p))
    throw new TrustedIssuerError(
      where,
      'uses no claim: every token would become the same workload',
      'e.g. "github:{{repository}}:{{environment}}"',
    );
  return parts;
}

function parseEntry(v: unknown, where: string): TrustedIssuer {
  if (!isObject(v))
    throw new TrustedIssuerError(where, 'must be a mapping with issuer, audience, conditions…');
  for (const key of Object.keys(v)) {
    if (!(ENTRY_KEYS as readonly string[]).includes(key)) {
      const meant = closest(key, ENTRY_KEYS);
      throw new TrustedIssuerError(
        `${where}.${key}`,
        'unknown key',
        meant ? `did you mean \`${meant}\`?` : `keys: ${ENTRY_KEYS.join(', ')}`,
      );
    }
  }
  const issuer = parseUrl(v.issuer, `${where}.issuer`, 'the issuer of the tokens');
  const audience = parseString(
    v.audience,
    `${where}.audience`,
    "the audience the tokens must carry (usually the broker's public URL)",
  );
  const jwksUri =
    v.jwks_uri === undefined ? undefined : parseUrl(v.jwks_uri, `${where}.jwks_uri`, 'a JWKS URL');

  let algorithms = DEFAULT_ALGORITHMS;
  if (v.algorithms !== undefined) {
    if (!Array.isArray(v.algorithms) || v.algorithms.length === 0)
      throw new TrustedIssuerError(`${where}.algorithms`, 'must be a non-empty list, e.g. [RS256]');
    algorithms = v.algorithms.map((a, i) => {
      if (typeof a !== 'string' || !(EXTERNAL_ALGORITHMS as readonly string[]).includes(a))
        throw new TrustedIssuerError(
          `${where}.algorithms[${i}]`,
          `${JSON.stringify(a)} is not accepted`,
          `asymmetric algorithms only: ${EXTERNAL_ALGORITHMS.join(', ')} (none and HS* would let others forge tokens)`,
        );
      return a;
    });
  }

  const conditions = parseConditions(v.conditions, `${where}.conditions`);
  const subject =
    v.subject === undefined
      ? null
      : parseTemplate(
          parseString(v.subject, `${where}.subject`, 'a template such as "github:{{repository}}"'),
          `${where}.subject`,
        );

  let groups: string[] = [];
  if (v.groups !== undefined) {
    if (!Array.isArray(v.groups))
      throw new TrustedIssuerError(
        `${where}.groups`,
        'must be a list of group names, e.g. [ci-deployers]',
      );
    groups = v.groups.map((g, i) => {
      if (typeof g !== 'string' || !GROUP.test(g))
        throw new TrustedIssuerError(
          `${where}.groups[${i}]`,
          `${JSON.stringify(g)} is not a group name`,
        );
      if (g.startsWith('group:'))
        throw new TrustedIssuerError(
          `${where}.groups[${i}]`,
          `write the group's name alone: ${g.slice(6)}`,
        );
      return g;
    });
  }

  const acr =
    v.acr === undefined || v.acr === null
      ? null
      : parseString(v.acr, `${where}.acr`, 'an acr value, e.g. mfa');

  let sessionTtlMs = DEFAULT_SESSION_TTL_MS;
  if (v.session_ttl !== undefined) {
    try {
      sessionTtlMs = parseDuration(v.session_ttl);
    } catch (err) {
      if (err instanceof DurationError)
        throw new TrustedIssuerError(`${where}.session_ttl`, err.message);
      throw err;
    }
    if (sessionTtlMs < MIN_SESSION_TTL_MS || sessionTtlMs > MAX_SESSION_TTL_MS)
      throw new TrustedIssuerError(
        `${where}.session_ttl`,
        `${formatDuration(sessionTtlMs)} is outside ${formatDuration(MIN_SESSION_TTL_MS)}…${formatDuration(MAX_SESSION_TTL_MS)}`,
      );
  }

  let name: string;
  if (v.name === undefined) {
    name = new URL(issuer).hostname;
  } else {
    name = parseString(v.name, `${where}.name`, 'a name');
    if (!NAME.test(name))
      throw new TrustedIssuerError(
        `${where}.name`,
        `${JSON.stringify(name)}: use letters, digits, ".", "_" and "-" (at most 64)`,
      );
  }
  return {
    name,
    issuer,
    audience,
    jwksUri,
    algorithms,
    conditions,
    subject,
    groups,
    acr,
    sessionTtlMs,
  };
}

/**
 * `trusted_issuers` from the config file (a YAML list) or a variable (JSON). `where` names the
 * source (`jitctl.yaml: trusted_issuers`); errors say which entry and key.
 */
export function parseTrustedIssuers(value: unknown, where: string): TrustedIssuer[] {
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      throw new TrustedIssuerError(
        where,
        'must be a JSON list in a variable, e.g. [{"issuer": …}]',
      );
    }
  }
  if (v === null) return [];
  if (!Array.isArray(v)) throw new TrustedIssuerError(where, 'must be a list of issuers');
  const entries = v.map((e, i) => parseEntry(e, `${where}[${i}]`));
  const seen = new Map<string, number>();
  entries.forEach((e, i) => {
    const before = seen.get(e.name);
    if (before !== undefined) {
      throw new TrustedIssuerError(
        `${where}[${i}].name`,
        `entries ${before} and ${i} are both named ${JSON.stringify(e.name)}`,
        'give each entry its own `name` (it labels audit events and the workload)',
      );
    }
    seen.set(e.name, i);
    // One issuer has one key set: the broker fetches it once for all of the issuer's entries.
    const first = entries.findIndex((x) => x.issuer === e.issuer);
    if (entries[first]!.jwksUri !== e.jwksUri) {
      throw new TrustedIssuerError(
        `${where}[${i}].jwks_uri`,
        `entries ${first} and ${i} both trust ${e.issuer} but with different jwks_uri`,
        'give every entry of one issuer the same jwks_uri (or none, to discover it)',
      );
    }
  });
  return entries;
}
