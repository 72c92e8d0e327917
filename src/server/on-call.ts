import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { matchesAny, parsePrincipal } from './policy/principal.js';
import type { Caller, OnCallSource, Principal } from './policy/types.js';

/**
 * The on-call list of approval rules with `on_call: true`: read from a file or an https:// URL
 * (an on-call schedule's export) at start and again every `refresh`. A read that fails keeps the
 * last good list and logs a warning; before any good read nobody is on call, so a broken source
 * never approves anyone. Entries are one per line (or a JSON array of strings): an email or a
 * subject, or a policy principal (`user:…`, `group:…`); `#` starts a comment.
 */

const MAX_BYTES = 1024 * 1024;
const TIMEOUT_MS = 10_000;

export function parseOnCall(text: string): { entries: Principal[]; problems: string[] } {
  const trimmed = text.trim();
  let lines: string[];
  if (trimmed.startsWith('[')) {
    const parsed = JSON.parse(trimmed) as unknown;
    if (!Array.isArray(parsed) || parsed.some((x) => typeof x !== 'string')) {
      throw new Error('a JSON on-call list must be an array of strings');
    }
    lines = parsed as string[];
  } else {
    lines = text.split('\n').map((l) => l.replace(/#.*$/, ''));
  }
  const entries: Principal[] = [];
  const problems: string[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const text = /^(user|group):/.test(line) ? line : `user:${line}`;
    const parsed = parsePrincipal(text);
    if ('error' in parsed) problems.push(`entry ${i + 1}: ${parsed.error}`);
    else entries.push(parsed.principal);
  });
  return { entries, problems };
}

export interface OnCallLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class OnCallList {
  #entries: Principal[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #location: string;
  readonly #isUrl: boolean;

  constructor(
    private readonly source: OnCallSource,
    /** The policy file, whose directory relative paths start from. */
    policyFile: string | null,
    private readonly logger: OnCallLogger,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.#isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(source.source);
    this.#location = this.#isUrl
      ? source.source
      : resolve(policyFile ? dirname(policyFile) : process.cwd(), source.source);
  }

  has(caller: Caller): boolean {
    return matchesAny(this.#entries, caller);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Reads the source now; keeps the last good list when that fails. */
  async refresh(): Promise<boolean> {
    try {
      const text = this.#isUrl ? await this.#download() : await readFile(this.#location, 'utf8');
      const { entries, problems } = parseOnCall(text);
      if (problems.length > 0) {
        this.logger.warn({ problems: problems.slice(0, 10) }, 'on-call list: entries skipped');
      }
      this.#entries = entries;
      this.logger.info({ entries: entries.length }, 'on-call list read');
      return true;
    } catch (err) {
      this.logger.warn(
        {
          err: (err as Error).message,
          source: this.#isUrl ? new URL(this.#location).origin : this.#location,
        },
        'on-call list could not be read; keeping the last one',
      );
      return false;
    }
  }

  /** The first read, then one every `refresh`. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.source.refreshMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #download(): Promise<string> {
    const res = await this.fetchImpl(this.#location, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
      redirect: 'error',
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.text();
    if (body.length > MAX_BYTES) throw new Error('over 1 MiB');
    return body;
  }
}
