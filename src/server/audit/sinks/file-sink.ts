import { constants } from 'node:fs';
import { type FileHandle, open, rename, stat, truncate, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makePrivateDir, refuseSharedFiles } from '../../private-files.js';
import type { SinkPosition } from './items.js';
import type { FileSinkSpec } from './settings.js';

/**
 * A JSON-lines file sink: one record per line, appended and synced to disk before the sink's
 * position moves, rotated by size (`<path>.1` is the newest rotated file, `<path>.<keep>` the
 * oldest; older ones are deleted). The files are 0600 in a directory created 0700: the log names
 * people, roles and reasons.
 *
 * The file is its own cursor: at start the position is read back from its last complete line (a
 * line cut short by a crash is removed first), so a restart neither skips nor repeats what the
 * file holds, and each replica's file is complete on its own (file sinks are per replica).
 */

export class FileSink {
  readonly spec: FileSinkSpec;
  #fh: FileHandle | undefined;
  #size = 0;

  constructor(spec: FileSinkSpec) {
    this.spec = spec;
  }

  /** Refuses a file or rotated file others can read; creates the directory if missing. */
  check(): void {
    const p = this.spec.path;
    refuseSharedFiles(
      [p, ...Array.from({ length: this.spec.keep }, (_, i) => `${p}.${i + 1}`)],
      'the audit log (names, roles, reasons)',
    );
  }

  /** Opens the file (creating it 0600) and returns where it left off, or undefined if empty. */
  async open(): Promise<SinkPosition | undefined> {
    makePrivateDir(dirname(this.spec.path));
    this.check();
    const own = await lastPosition(this.spec.path, true);
    await this.#openCurrent();
    return own ?? (await lastPosition(`${this.spec.path}.1`, false));
  }

  async #openCurrent(): Promise<void> {
    this.#fh = await open(
      this.spec.path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
      0o600,
    );
    this.#size = (await this.#fh.stat()).size;
  }

  /** Appends the lines (each without its newline), rotating between lines, then syncs. */
  async write(lines: readonly string[]): Promise<void> {
    if (!this.#fh) await this.#openCurrent();
    let chunk: string[] = [];
    let chunkBytes = 0;
    const flush = async () => {
      if (chunk.length === 0) return;
      await this.#fh!.write(chunk.join(''));
      this.#size += chunkBytes;
      chunk = [];
      chunkBytes = 0;
    };
    for (const line of lines) {
      const text = `${line}\n`;
      const bytes = Buffer.byteLength(text);
      if (this.#size + chunkBytes > 0 && this.#size + chunkBytes + bytes > this.spec.maxBytes) {
        await flush();
        await this.#rotate();
      }
      chunk.push(text);
      chunkBytes += bytes;
    }
    await flush();
    await this.#fh!.datasync();
  }

  async #rotate(): Promise<void> {
    const p = this.spec.path;
    await this.#fh!.datasync();
    await this.#fh!.close();
    this.#fh = undefined;
    await unlink(`${p}.${this.spec.keep}`).catch(ignoreMissing);
    for (let i = this.spec.keep - 1; i >= 1; i--)
      await rename(`${p}.${i}`, `${p}.${i + 1}`).catch(ignoreMissing);
    await rename(p, `${p}.1`);
    await this.#openCurrent();
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => {});
  }
}

const ignoreMissing = (err: NodeJS.ErrnoException) => {
  if (err.code !== 'ENOENT') throw err;
};

/** A line's place: an event's seq, or a checkpoint's (JSON lines or OCSF records). */
function placeOf(line: string): { event?: number; checkpoint?: number } | undefined {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const unmapped = (o?.unmapped ?? {}) as Record<string, unknown>;
  const checkpoint = (o?.checkpoint ?? unmapped.checkpoint) as { seq?: unknown } | undefined;
  if (checkpoint && typeof checkpoint.seq === 'number') return { checkpoint: checkpoint.seq };
  const seq = typeof o?.seq === 'number' ? o.seq : unmapped.seq;
  return typeof seq === 'number' ? { event: seq } : undefined;
}

/**
 * The position a file's last lines record: the last event's seq, and the checkpoints written
 * after it (otherwise all up to the event before it, which were written in their turn). With
 * `repair`, a last line without its newline (a write cut short) is cut off.
 */
async function lastPosition(path: string, repair: boolean): Promise<SinkPosition | undefined> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const fh = await open(path, 'r');
  try {
    let pos = size;
    // Bytes read so far from the end, newline-split as bytes (a 64 KiB step may cut a character).
    let tail = Buffer.alloc(0);
    let checkedEnd = false;
    let checkpoint = -1;
    while (pos > 0) {
      const from = Math.max(0, pos - 65_536);
      const buf = Buffer.alloc(pos - from);
      await fh.read(buf, 0, buf.length, from);
      tail = Buffer.concat([buf, tail]);
      pos = from;
      if (!checkedEnd) {
        if (tail[tail.length - 1] !== 0x0a) {
          const cut = tail.lastIndexOf(0x0a);
          if (cut < 0 && pos > 0) continue;
          tail = tail.subarray(0, cut + 1);
          if (repair) await truncate(path, pos + cut + 1);
        }
        checkedEnd = true;
      }
      // Whole lines only: what precedes the first newline may continue further back.
      const start = pos === 0 ? 0 : tail.indexOf(0x0a) + 1;
      if (start === 0 && pos > 0) continue;
      const lines = tail.subarray(start).toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= 0; i--) {
        const place = lines[i] ? placeOf(lines[i]!) : undefined;
        if (!place) continue;
        if (place.checkpoint !== undefined) checkpoint = Math.max(checkpoint, place.checkpoint);
        else if (place.event !== undefined)
          return { seq: place.event, checkpoint_seq: Math.max(checkpoint, place.event - 1) };
      }
      tail = tail.subarray(0, start);
    }
    return checkpoint >= 0 ? { seq: checkpoint, checkpoint_seq: checkpoint } : undefined;
  } finally {
    await fh.close();
  }
}
