/**
 * What of a command run under a grant is reported and audited, by the role's `audit_commands`:
 * `none`, `name` (the program only: arguments can hold secrets) or `full` (every argument, with
 * values that look like secrets replaced by `[REDACTED]`). The CLI applies it before a report
 * leaves the machine and the broker applies it again before the audit log keeps it, so neither
 * alone has to be trusted.
 *
 * What looks like a secret: a JWT; the well-known shapes of cloud and forge tokens; the value of
 * `name=value`, `name: value` and `--name value` when the name says password, secret, token, key,
 * auth, credential, session or cookie; the password of a URL; and long strings of high entropy
 * (random-looking letters and digits). It errs on the side of redacting.
 */

export type AuditCommands = 'none' | 'name' | 'full';

export const REDACTED = '[REDACTED]';
/** Longest argument kept; longer ones are cut (the report must stay small). */
const MAX_ARG = 1024;
const MAX_ARGS = 64;

const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
/** Token formats with a recognisable prefix (AWS, GitHub, GitLab, Slack, Stripe, Google, OpenAI…). */
const KNOWN_TOKENS =
  /\b(?:A(?:KIA|SIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}|npm_[A-Za-z0-9]{30,})\b/g;
const PRIVATE_KEY =
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g;
const SECRET_NAME =
  /(pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|credential|cred|session|cookie|signature|bearer)/i;
/** `name=value` or `name:value` (an option, an environment assignment, a header). */
const ASSIGNMENT = /^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)(=|:\s*)([\s\S]+)$/;
/** A flag whose next argument is its value. */
const FLAG = /^-{1,2}[A-Za-z][A-Za-z0-9_.-]*$/;
/** `scheme://user:password@host` */
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)([^\s@/]+)(@)/gi;
/** `?token=…&…` */
const QUERY_SECRET =
  /([?&;][^=&;\s]*(?:pass|secret|token|key|auth|sig|session)[^=&;\s]*=)([^&;\s#]+)/gi;
const LONG_RUN = /[A-Za-z0-9+/_-]{20,}={0,2}/g;

/** Bits per character: random tokens score above 3.5, words and paths below. */
function entropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

function looksRandom(s: string): boolean {
  const core = s.replace(/=+$/, '');
  if (/^[0-9a-f]{32,}$/i.test(core)) return true; // hex keys and digests
  const classes =
    Number(/[a-z]/.test(core)) + Number(/[A-Z]/.test(core)) + Number(/[0-9]/.test(core));
  return classes >= 3 && /[0-9]/.test(core) && entropy(core) >= 3.5;
}

/** Redacts what looks like a secret inside one piece of text. */
export function redactText(text: string, known: readonly string[] = []): string {
  let out = text;
  for (const secret of known) {
    if (secret.length >= 8) out = out.split(secret).join(REDACTED);
  }
  out = out
    .replace(PRIVATE_KEY, REDACTED)
    .replace(JWT, REDACTED)
    .replace(KNOWN_TOKENS, REDACTED)
    .replace(URL_PASSWORD, `$1${REDACTED}$3`)
    .replace(QUERY_SECRET, `$1${REDACTED}`)
    .replace(LONG_RUN, (run) => (looksRandom(run) ? REDACTED : run));
  return out;
}

/** Every argument, with what looks like a secret redacted (`audit_commands: full`). */
export function redactArgs(argv: readonly string[], known: readonly string[] = []): string[] {
  const out: string[] = [];
  let valueOfSecretFlag = false;
  for (const [i, raw] of argv.slice(0, MAX_ARGS).entries()) {
    const arg = raw.length > MAX_ARG ? `${raw.slice(0, MAX_ARG)}…` : raw;
    if (i > 0 && valueOfSecretFlag) {
      out.push(REDACTED);
      valueOfSecretFlag = false;
      continue;
    }
    const assignment = ASSIGNMENT.exec(arg);
    if (i > 0 && assignment && SECRET_NAME.test(assignment[1]!)) {
      out.push(`${assignment[1]}${assignment[2]}${REDACTED}`);
      continue;
    }
    valueOfSecretFlag = i > 0 && FLAG.test(arg) && SECRET_NAME.test(arg);
    out.push(redactText(arg, known));
  }
  if (argv.length > MAX_ARGS) out.push(`… ${argv.length - MAX_ARGS} more arguments`);
  return out;
}

/** The program's name, without its directory. */
export function programName(argv0: string): string {
  const name = argv0.slice(argv0.lastIndexOf('/') + 1) || argv0;
  return redactText(name.length > 255 ? name.slice(0, 255) : name);
}

/** The command as the role's `audit_commands` allows it to be reported; undefined for `none`. */
export function commandForAudit(
  argv: readonly string[],
  mode: AuditCommands,
  known: readonly string[] = [],
): string[] | undefined {
  if (mode === 'none' || argv.length === 0) return undefined;
  if (mode === 'name') return [programName(argv[0]!)];
  return redactArgs(argv, known);
}
