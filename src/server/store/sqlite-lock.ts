import { hostname } from 'node:os';
import type SqliteDatabase from 'better-sqlite3';
import { createPrivateFile } from '../private-files.js';

/**
 * One SQLite file, one broker. Two brokers on one file would both run (SQLite serialises their
 * writes) but never hear of each other's changes, so a long poll on one is not woken by an
 * approval on the other; several replicas need PostgreSQL and its LISTEN/NOTIFY.
 *
 * The lock is SQLite's own: `PATH.lock` is a small SQLite database in which the broker holds a
 * write transaction (a RESERVED lock, POSIX advisory locks underneath) for as long as it runs. The
 * kernel drops the lock when the process ends however it ends, kill -9 included, so a stale lock
 * never blocks a restart; and SQLite tracks its locks per file within a process too, so two
 * brokers in one process are kept apart as well. A RESERVED lock still lets others read, so the
 * second broker can say who holds the file.
 */

export class DatabaseLockedError extends Error {
  override name = 'DatabaseLockedError';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

export interface SqliteLock {
  readonly path: string;
  release(): void;
}

type SqliteConstructor = typeof SqliteDatabase;

export function lockSqliteFile(dbPath: string, Sqlite: SqliteConstructor): SqliteLock {
  const path = `${dbPath}.lock`;
  createPrivateFile(path);
  // timeout 0: a held lock is an answer, not something to wait for.
  const db = new Sqlite(path, { timeout: 0 });
  try {
    const take = () => {
      try {
        db.exec('begin immediate');
      } catch (err) {
        if ((err as { code?: unknown }).code === 'SQLITE_BUSY') throw refused(dbPath, path, db);
        throw err;
      }
    };
    take();
    db.exec('create table if not exists holder (pid integer, host text, since text)');
    db.exec('delete from holder');
    db.prepare('insert into holder (pid, host, since) values (?, ?, ?)').run(
      process.pid,
      hostname(),
      new Date().toISOString(),
    );
    db.exec('commit');
    // Held from here until release() or the end of the process; nothing is written under it.
    take();
  } catch (err) {
    db.close();
    throw err;
  }
  return {
    path,
    release() {
      if (db.open) db.close();
    },
  };
}

function refused(
  dbPath: string,
  lockPath: string,
  db: SqliteDatabase.Database,
): DatabaseLockedError {
  let who = 'another jitctl server';
  try {
    const row = db.prepare('select pid, host, since from holder').get() as
      | { pid: number; host: string; since: string }
      | undefined;
    if (row) who = `another jitctl server (pid ${row.pid} on ${row.host}, since ${row.since})`;
  } catch {
    // The holder is between its two steps; the message just names no process.
  }
  return new DatabaseLockedError(
    `${who} is already using ${dbPath} (it holds ${lockPath}): SQLite serves one broker process; ` +
      'to run several replicas, use PostgreSQL (--db postgres://user@host/db)',
    'stop the other broker first, or give this one a database of its own (--db)',
  );
}
