import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

/**
 * Storage for oidc-provider's models. Short-lived ones (authorization codes, device codes,
 * interactions, access tokens) live in memory; sessions, grants and refresh tokens are also
 * written to `idp-state.json` in the data directory so that signing in survives a restart of
 * `jitctl server --dev` (the signing keys persist beside it, keys.ts). Refresh tokens and session
 * ids (the browser's session cookie) are bearer values that double as their ids: they are filed
 * under a SHA-256 of the value, without it, so the file never holds one in clear.
 */

export const STATE_FILE = 'idp-state.json';
const PERSISTED = new Set(['Session', 'Grant', 'RefreshToken']);
/** Models whose id is a bearer secret: stored under a digest, the id removed from the payload. */
const HASHED = new Set(['RefreshToken', 'Session']);

interface Entry {
  payload: AdapterPayload;
  /** ms since epoch; undefined never expires */
  exp: number | undefined;
}

/**
 * Entries stay this long past their lifetime. oidc-provider checks every model's `exp` itself, so
 * nothing expired is ever accepted; keeping them lets it tell an expired device code (RFC 8628
 * §3.5 `expired_token`) from an unknown one (`invalid_grant`).
 */
const GRACE_MS = 10 * 60_000;

const digest = (id: string) => `sha256:${createHash('sha256').update(id).digest('base64url')}`;

export interface StateStore {
  Adapter: AdapterFactory;
  /** Writes pending changes (the broker calls close() on shutdown, which calls this). */
  flush(): Promise<void>;
}

export function createStateStore(dataDir: string, now: () => number = Date.now): StateStore {
  const file = join(dataDir, STATE_FILE);
  const models = new Map<string, Map<string, Entry>>();
  const table = (name: string) => {
    let t = models.get(name);
    if (!t) {
      t = new Map();
      models.set(name, t);
    }
    return t;
  };

  let rehashed = false;
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as {
      v?: number;
      models?: Record<string, Record<string, Entry>>;
    };
    if (saved.v === 1 && saved.models) {
      const t0 = now();
      for (const [name, entries] of Object.entries(saved.models)) {
        if (!PERSISTED.has(name)) continue;
        for (const [key, entry] of Object.entries(entries)) {
          if (
            entry &&
            typeof entry.payload === 'object' &&
            (entry.exp === undefined || entry.exp > t0)
          ) {
            if (HASHED.has(name) && !key.startsWith('sha256:')) {
              // Written by an earlier version with the id in clear: file it hashed from now on.
              const { jti: _clear, ...payload } = entry.payload;
              table(name).set(digest(key), { ...entry, payload });
              rehashed = true;
            } else {
              table(name).set(key, entry);
            }
          }
        }
      }
    }
  } catch {
    // No file yet, or an unreadable one: start empty (people sign in again; nothing else is lost).
  }

  let dirty = false;
  let writing: Promise<void> = Promise.resolve();
  const write = async () => {
    if (!dirty) return;
    dirty = false;
    const t0 = now();
    const out: Record<string, Record<string, Entry>> = {};
    for (const name of PERSISTED) {
      const entries: Record<string, Entry> = {};
      for (const [key, entry] of table(name)) {
        if (entry.exp === undefined || entry.exp > t0) entries[key] = entry;
      }
      out[name] = entries;
    }
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ v: 1, models: out }), { mode: 0o600 });
    await rename(tmp, file);
  };
  const changed = (name: string) => {
    if (!PERSISTED.has(name)) return;
    dirty = true;
    writing = writing.then(write).catch(() => {
      // A failed write leaves the previous file; the next change tries again.
      dirty = true;
    });
  };

  class StateAdapter implements Adapter {
    readonly #name: string;
    readonly #hashed: boolean;
    constructor(name: string) {
      this.#name = name;
      this.#hashed = HASHED.has(name);
    }
    #key(id: string): string {
      return this.#hashed ? digest(id) : id;
    }
    #live(key: string): Entry | undefined {
      const t = table(this.#name);
      const entry = t.get(key);
      if (!entry) return undefined;
      if (entry.exp !== undefined && entry.exp <= now()) {
        t.delete(key);
        return undefined;
      }
      return entry;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const stored = { ...payload };
      if (this.#hashed) delete stored.jti;
      table(this.#name).set(this.#key(id), {
        payload: stored,
        exp: expiresIn ? now() + expiresIn * 1000 + GRACE_MS : undefined,
      });
      changed(this.#name);
    }
    async find(id: string): Promise<AdapterPayload | undefined> {
      const entry = this.#live(this.#key(id));
      if (!entry) return undefined;
      return this.#hashed ? { ...entry.payload, jti: id } : { ...entry.payload };
    }
    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      for (const [key, entry] of table(this.#name)) {
        if (entry.payload.userCode === userCode && this.#live(key)) return { ...entry.payload };
      }
      return undefined;
    }
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      for (const [key, entry] of table(this.#name)) {
        if (entry.payload.uid === uid && this.#live(key)) return { ...entry.payload };
      }
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const entry = this.#live(this.#key(id));
      if (!entry) return;
      entry.payload = { ...entry.payload, consumed: Math.floor(now() / 1000) };
      changed(this.#name);
    }
    async destroy(id: string): Promise<void> {
      table(this.#name).delete(this.#key(id));
      changed(this.#name);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      const t = table(this.#name);
      for (const [key, entry] of t) if (entry.payload.grantId === grantId) t.delete(key);
      changed(this.#name);
    }
  }

  // Rewrite at once a file that held ids in clear.
  if (rehashed) {
    dirty = true;
    writing = writing.then(write).catch(() => {
      dirty = true;
    });
  }

  return {
    Adapter: StateAdapter,
    flush: async () => {
      await writing;
      await write();
    },
  };
}
