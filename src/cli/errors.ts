import { ErrorCode } from '../api/errors.js';

/**
 * The CLI's exit codes (README "Exit codes") and the error classes that carry them. Library
 * code (auth/, client/, credentials/, commands) throws these; only src/cli/main.ts turns them into
 * a message on stderr and an exit code. Anything else that reaches main is a bug: it prints a
 * short message, and the stack only with JITCTL_DEBUG=1.
 */
export const ExitCode = {
  Ok: 0,
  Error: 1,
  Usage: 2,
  /** denied, cancelled, expired, revoked, or forbidden by policy */
  Denied: 3,
  /** authentication needed or step-up failed */
  Auth: 4,
  /** still pending when --timeout ran out */
  Pending: 5,
  Unreachable: 69,
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface JitErrorOptions {
  hint?: string | undefined;
  cause?: unknown;
}

/** An error meant for the user: a message, an optional hint on what to do, an exit code. */
export class JitError extends Error {
  override name = 'JitError';
  readonly hint: string | undefined;
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.Error,
    options: JitErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options.hint;
  }
}

export class UsageError extends JitError {
  override name = 'UsageError';
  constructor(message: string, options?: JitErrorOptions) {
    super(message, ExitCode.Usage, options);
  }
}

/** Denied, cancelled, expired, revoked, or forbidden by policy. */
export class DeniedError extends JitError {
  override name = 'DeniedError';
  constructor(message: string, options?: JitErrorOptions) {
    super(message, ExitCode.Denied, options);
  }
}

export class AuthError extends JitError {
  override name = 'AuthError';
  constructor(message: string, options?: JitErrorOptions) {
    super(message, ExitCode.Auth, { hint: 'run `jitctl login`', ...options });
  }
}

export class StillPendingError extends JitError {
  override name = 'StillPendingError';
  constructor(message: string, options?: JitErrorOptions) {
    super(message, ExitCode.Pending, options);
  }
}

export class UnreachableError extends JitError {
  override name = 'UnreachableError';
  constructor(message: string, options?: JitErrorOptions) {
    super(message, ExitCode.Unreachable, options);
  }
}

export class InterruptedError extends JitError {
  override name = 'InterruptedError';
  constructor(message = 'interrupted', options?: JitErrorOptions) {
    super(message, ExitCode.Interrupted, options);
  }
}

/** An error answer from the broker (`{"error": {code, message, hint}}`), with its exit code. */
export class ApiError extends JitError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    hint?: string,
  ) {
    super(message, exitCodeForApiError(status, code), { hint });
  }
}

/** How broker answers map to exit codes; one table so every command agrees. */
export function exitCodeForApiError(status: number, code: string): number {
  if (status === 401) return ExitCode.Auth;
  if (status === 403) return ExitCode.Denied;
  if (status === 409 && code === ErrorCode.InvalidState) return ExitCode.Denied;
  if (status === 400 || status === 413 || status === 415 || status === 422) return ExitCode.Usage;
  if (status === 502 || status === 503 || status === 504) return ExitCode.Unreachable;
  return ExitCode.Error;
}

/** The exit code for anything thrown out of a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof JitError) return err.exitCode;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('commander.')) {
    if (
      code === 'commander.helpDisplayed' ||
      code === 'commander.version' ||
      code === 'commander.help'
    ) {
      return ExitCode.Ok;
    }
    return ExitCode.Usage;
  }
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'ExitPromptError' || name === 'AbortPromptError') return ExitCode.Interrupted;
  return ExitCode.Error;
}

/** The text printed on stderr for an error: message, hint, and a stack only for bugs in debug mode. */
export function formatError(err: unknown, debug: boolean): string {
  if (err instanceof JitError) {
    let text = `error: ${err.message}`;
    if (err.hint) text += `\nhint: ${err.hint}`;
    if (debug && err.cause instanceof Error && err.cause.stack)
      text += `\ncaused by: ${err.cause.stack}`;
    return text;
  }
  // A question answered with Ctrl-C that no command turned into an InterruptedError yet.
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'ExitPromptError' || name === 'AbortPromptError') return 'error: interrupted';
  const message = err instanceof Error ? err.message : String(err);
  if (debug && err instanceof Error && err.stack) return `error: ${err.stack}`;
  return `error: ${message}\nhint: this looks like a bug in jitctl; run again with JITCTL_DEBUG=1 for details and report it`;
}
