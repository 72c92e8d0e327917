import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { JWK } from 'jose';
import { appendAudit } from '../audit/log.js';
import { refuseSharedFiles } from '../private-files.js';
import type { Db } from '../store/database.js';
import {
  created,
  type KeyChange,
  type KeyStore,
  type RotateResult,
  retiredEvent,
  rotated,
} from './key-store.js';
import {
  algOfJwk,
  generateKey,
  type KeyRecord,
  kidOf,
  publicPart,
  type SigningAlg,
  SigningKeyError,
} from './keys.js';

/**
 * Signing keys in a file (`signing_key: /path/keys.json`), for operators who keep keys out of the
 * database and its backups. The file is a JWK Set (RFC 7517 §5): the signing key with its private
 * part and the published ones with public parts only, each with its kid, alg and a `jitctl`
 * member (`state`, `created`, `rotated`; RFC 7517 §4 lets a JWK carry members a reader ignores).
 * A file holding one private JWK (what earlier versions wrote) is a set whose only key signs.
 *
 * `jitctl server keys rotate|retire` rewrite the file atomically (a private temporary file in
 * the same directory, renamed over it) under a lock file, and audit the change in the database.
 * Brokers re-read the file every few seconds, so a file replaced in place, or a Kubernetes secret
 * updated by kubelet, reaches them without a restart.
 */

interface Meta {
  state?: 'signing' | 'published';
  created?: string;
  rotated?: string | null;
}

interface Entry {
  jwk: JWK;
  record: KeyRecord;
}

const META = 'jitctl';

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export class FileKeyStore implements KeyStore {
  readonly description: string;
  readonly #path: string;
  readonly #db: Db;

  constructor(path: string, db: Db) {
    this.#path = path;
    this.#db = db;
    this.description = `key file ${path}`;
  }

  /** The file's keys, or undefined when there is no file. */
  async #read(): Promise<Entry[] | undefined> {
    const path = this.#path;
    // Whoever reads this file can mint credentials: refuse one other users can read.
    refuseSharedFiles([path], 'the private key that signs credentials');
    let text: string;
    let mtime: number;
    try {
      [text, mtime] = await Promise.all([
        readFile(path, 'utf8'),
        stat(path).then((s) => s.mtimeMs),
      ]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new SigningKeyError(`cannot read signing key ${path}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new SigningKeyError(`${path} is not JSON (a JWK Set or a private JWK)`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw new SigningKeyError(`${path} must hold a JWK Set ({"keys": [...]}) or a private JWK`);
    const raw = 'keys' in doc ? (doc as { keys: unknown }).keys : [doc];
    if (!Array.isArray(raw) || raw.length === 0)
      throw new SigningKeyError(`${path}: "keys" must be a non-empty list of JWKs`);
    const entries: Entry[] = [];
    for (const [i, k] of raw.entries()) {
      const where = raw.length === 1 && !('keys' in doc) ? path : `${path}: keys[${i}]`;
      if (typeof k !== 'object' || k === null || Array.isArray(k))
        throw new SigningKeyError(`${where} is not a JWK`);
      const jwk = k as JWK & { [META]?: Meta };
      const alg = algOfJwk(jwk, where);
      const kid = await kidOf(jwk);
      if (jwk.kid !== undefined && jwk.kid !== kid)
        throw new SigningKeyError(
          `${where}: kid ${JSON.stringify(jwk.kid)} is not this key's thumbprint`,
        );
      const meta = jwk[META] ?? {};
      const createdAt = meta.created ? Date.parse(meta.created) : mtime;
      const rotatedAt = meta.rotated ? Date.parse(meta.rotated) : null;
      entries.push({
        jwk,
        record: {
          kid,
          alg,
          state: meta.state === 'signing' ? 'signing' : 'published',
          createdAt: Number.isFinite(createdAt) ? createdAt : mtime,
          rotatedAt: rotatedAt !== null && Number.isFinite(rotatedAt) ? rotatedAt : null,
          retiredAt: null,
          publicJwk: publicPart(jwk),
        },
      });
    }
    const signing = entries.filter((e) => e.record.state === 'signing');
    if (signing.length > 1)
      throw new SigningKeyError(`${path}: ${signing.length} keys are marked signing; one must be`);
    // A set written by hand (or a lone JWK): the first private key signs.
    if (signing.length === 0) {
      const first = entries.find((e) => typeof e.jwk.d === 'string');
      if (first) first.record.state = 'signing';
    }
    const signer = entries.find((e) => e.record.state === 'signing');
    if (!signer || typeof signer.jwk.d !== 'string')
      throw new SigningKeyError(
        `${path} holds no private key to sign with`,
        'run `jitctl server keys rotate` to add one',
      );
    return entries;
  }

  async list(): Promise<KeyRecord[]> {
    const entries = (await this.#read()) ?? [];
    return entries.map((e) => e.record).sort((a, b) => b.createdAt - a.createdAt);
  }

  async signing(): Promise<{ record: KeyRecord; privateJwk: JWK } | undefined> {
    const signer = (await this.#read())?.find((e) => e.record.state === 'signing');
    return signer ? { record: signer.record, privateJwk: withoutMeta(signer.jwk) } : undefined;
  }

  async ensure(alg: SigningAlg, now: number, opts: { create: boolean }): Promise<KeyRecord | null> {
    if ((await this.#read()) !== undefined || !opts.create) return null;
    const key = await generateKey(alg);
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
    try {
      // wx: two brokers starting at once must not overwrite each other's new key.
      const fh = await open(this.#path, 'wx', 0o600);
      try {
        await fh.writeFile(
          serialize([fileEntry(key.privateJwk, key.kid, alg, 'signing', now, null)]),
        );
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return null;
      throw new SigningKeyError(
        `cannot create signing key ${this.#path}: ${(err as Error).message}`,
      );
    }
    return (await this.list()).find((r) => r.kid === key.kid) ?? null;
  }

  async rotate(alg: SigningAlg, now: number, by: KeyChange): Promise<RotateResult> {
    const fresh = await generateKey(alg);
    return this.#change(now, async (entries) => {
      const previous = entries.find((e) => e.record.state === 'signing');
      const keep = entries.map((e) =>
        fileEntry(
          e.jwk,
          e.record.kid,
          e.record.alg,
          'published',
          e.record.createdAt,
          e.record.state === 'signing' ? now : e.record.rotatedAt,
        ),
      );
      return {
        entries: [fileEntry(fresh.privateJwk, fresh.kid, alg, 'signing', now, null), ...keep],
        events: [
          created(fresh.kid, alg, by.actor),
          rotated(fresh.kid, previous?.record.kid ?? null, alg, by),
        ],
        result: (after: KeyRecord[]): RotateResult => ({
          created: after.find((r) => r.kid === fresh.kid)!,
          previous: previous ? after.find((r) => r.kid === previous.record.kid)! : null,
        }),
      };
    });
  }

  async retire(
    kid: string,
    now: number,
    by: KeyChange & { safeAt: number | null },
  ): Promise<KeyRecord> {
    let retired: KeyRecord | undefined;
    await this.#change(now, async (entries) => {
      const target = entries.find((e) => e.record.kid === kid);
      if (!target) throw new SigningKeyError(`no key ${kid} in ${this.#path}`);
      if (target.record.state === 'signing')
        throw new SigningKeyError(
          `key ${kid} is the signing key`,
          'rotate first (`jitctl server keys rotate`), then retire it once its credentials have expired',
        );
      retired = { ...target.record, state: 'retired', retiredAt: now };
      return {
        entries: entries
          .filter((e) => e !== target)
          .map((e) =>
            fileEntry(
              e.jwk,
              e.record.kid,
              e.record.alg,
              e.record.state as 'signing' | 'published',
              e.record.createdAt,
              e.record.rotatedAt,
            ),
          ),
        events: [retiredEvent(target.record, by)],
        result: () => undefined,
      };
    });
    return retired!;
  }

  /**
   * Rewrites the file under a lock file, appending the change's audit events in one database
   * transaction: the new file replaces the old one (rename) inside the transaction, so a refused
   * audit append leaves the file as it was.
   */
  async #change<T>(
    now: number,
    plan: (entries: Entry[]) => Promise<{
      entries: JWK[];
      events: Parameters<typeof appendAudit>[3];
      result: (after: KeyRecord[]) => T;
    }>,
  ): Promise<T> {
    const path = this.#path;
    const lock = `${path}.lock`;
    let lockHandle: Awaited<ReturnType<typeof open>>;
    try {
      lockHandle = await open(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new SigningKeyError(
          `another \`jitctl server keys\` is changing ${path} (${lock} exists)`,
          `wait for it, or delete ${lock} if none is running`,
        );
      throw new SigningKeyError(`cannot lock ${path}: ${(err as Error).message}`);
    }
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const entries = await this.#read();
      if (!entries)
        throw new SigningKeyError(
          `${path} does not exist`,
          'start the broker once to create it, or check signing_key',
        );
      const { entries: next, events, result } = await plan(entries);
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(serialize(next));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.#db.transaction(async (tx) => {
        await appendAudit(tx, this.#db.dialect, now, events);
        await rename(tmp, path);
      });
      return result(await this.list());
    } finally {
      await lockHandle.close();
      await rm(lock, { force: true });
      await rm(tmp, { force: true });
    }
  }
}

/** A key as the file stores it: the signing key keeps its private part, the others do not. */
function fileEntry(
  jwk: JWK,
  kid: string,
  alg: SigningAlg,
  state: 'signing' | 'published',
  createdAt: number,
  rotatedAt: number | null,
): JWK {
  const material = state === 'signing' ? withoutMeta(jwk) : publicPart(jwk);
  const meta: Meta = { state, created: iso(createdAt)!, rotated: iso(rotatedAt) };
  return { ...material, kid, alg, use: 'sig', [META]: meta } as JWK;
}

function withoutMeta(jwk: JWK): JWK {
  const {
    [META]: _meta,
    kid: _kid,
    alg: _alg,
    use: _use,
    ...rest
  } = jwk as JWK & {
    [META]?: Meta;
  };
  return rest;
}

function serialize(keys: JWK[]): string {
  return `${JSON.stringify({ keys }, null, 2)}\n`;
}
