import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IMClientError, storageIoError } from '../errors.js';
import { fsyncDir } from './fsyncDir.js';

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Options of {@link JsonlWriter.open}. */
export interface JsonlWriterOptions {
  /**
   * Sync each batch to disk before resolving its appends. Turn off only for
   * data that can be rebuilt (tests of throughput ceilings, caches).
   * @default true
   */
  durable?: boolean;
}

/**
 * Appends lines to a JSONL file with group commit: appends made while a batch
 * is being written and synced wait and go out together as the next batch, so a
 * burst of N appends costs a handful of writes and fsyncs instead of N.
 * Each `append` resolves once its lines are durable.
 *
 * A file whose last line was torn by a crash (no final newline) gets a newline
 * before the first new line, so the torn bytes stay a line of their own that
 * readers skip, and never glue onto a new record.
 *
 * @example
 * ```ts
 * const log = await JsonlWriter.open('/ws/im_client/conversations/a+b.jsonl');
 * await log.append(JSON.stringify(record));
 * await log.close();
 * ```
 */
export class JsonlWriter {
  readonly path: string;
  readonly #fh: FileHandle;
  readonly #durable: boolean;
  /** Opened with O_DSYNC: each write is durable when it returns. */
  readonly #synced: boolean;
  /** Size the file will have once everything appended so far is written. */
  #length: number;
  /**
   * Size of the file once the batches so far are written: where the next
   * batch starts. Always at most the real size; exact unless `#sizeUnknown`.
   */
  #written: number;
  /** A failed batch could be neither cut back nor measured: measured again before the next one. */
  #sizeUnknown = false;
  #needsNewline: boolean;
  #created: boolean;
  #pending: string[] = [];
  /** UTF-8 bytes of the pending lines, newlines included. */
  #pendingBytes = 0;
  #waiters: Waiter[] = [];
  /** The waiters of the batch being written, while it is. */
  #writing: Waiter[] | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #batches = 0;

  private constructor(path: string, fh: FileHandle, length: number, needsNewline: boolean, created: boolean, durable: boolean, synced: boolean) {
    this.path = path;
    this.#fh = fh;
    this.#length = length + (needsNewline ? 1 : 0);
    this.#written = length;
    this.#needsNewline = needsNewline;
    this.#created = created;
    this.#durable = durable;
    this.#synced = synced;
  }

  /** Opens (creating if needed) `path` for appending. */
  static async open(path: string, options: JsonlWriterOptions = {}): Promise<JsonlWriter> {
    let fh: FileHandle;
    const durable = options.durable ?? true;
    let synced = durable && SYNCED_WRITES;
    try {
      try {
        fh = await open(path, synced ? SYNCED_FLAGS : 'a+', 0o644);
      } catch (err) {
        // A file system that refuses O_DSYNC gets the write and the fdatasync.
        if (!synced || (err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        synced = false;
        fh = await open(path, 'a+', 0o644);
      }
    } catch (err) {
      throw storageIoError(path, err);
    }
    try {
      const { size } = await fh.stat();
      let needsNewline = false;
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        needsNewline = last[0] !== 0x0a;
      }
      return new JsonlWriter(path, fh, size, needsNewline, size === 0, durable, synced);
    } catch (err) {
      await fh.close().catch(() => {});
      throw storageIoError(path, err);
    }
  }

  /**
   * Byte length the file will have once every append made so far is written
   * (including the newline a torn last line gets): the offset at which the
   * next appended line will start.
   */
  get length(): number {
    return this.#length;
  }

  /**
   * Byte length of the file as far as its batches have been written: every
   * line appended from now on starts at or after it. It starts exactly at
   * {@link length} unless a batch before it fails, which is taken back out of
   * the file, so offsets kept to find lines again (scans, intents) take this.
   */
  get settledLength(): number {
    return this.#written;
  }

  /**
   * Appends one line (or several, in order) and resolves once they are on
   * disk. Lines must not contain a newline; `JSON.stringify` output never does.
   */
  append(lines: string | readonly string[]): Promise<void> {
    if (this.#closed) return Promise.reject(new IMClientError('CLOSED', `${this.path} is closed`));
    if (typeof lines !== 'string' && lines.length === 0) return this.#afterWhatCameBefore();
    let bytes = 0;
    if (typeof lines === 'string') {
      this.#pending.push(lines);
      bytes = Buffer.byteLength(lines) + 1;
    } else {
      for (const line of lines) {
        this.#pending.push(line);
        bytes += Buffer.byteLength(line) + 1;
      }
    }
    this.#length += bytes;
    this.#pendingBytes += bytes;
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#running ??= this.#drain();
    });
  }

  /**
   * Settles with the batch holding the last lines appended so far: the next
   * batch if lines are pending, the one being written if not (its error
   * included), at once if the file is idle.
   */
  #afterWhatCameBefore(): Promise<void> {
    const batch = this.#pending.length > 0 ? this.#waiters : this.#writing;
    if (batch === undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => batch.push({ resolve, reject }));
  }

  /** How many batches (write + sync) were made: far fewer than appends under load. */
  get batches(): number {
    return this.#batches;
  }

  /** Whether {@link JsonlWriter.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves once everything appended so far is durable. */
  async flush(): Promise<void> {
    await this.#running;
  }

  /**
   * Flushes and closes the file. Later appends reject with code `CLOSED`. A
   * second call resolves once the first has settled (its error is the first
   * call's to report: the file is not open either way).
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing.catch(() => {});
    this.#closed = true;
    this.#closing = (async () => {
      await this.#running;
      await this.#fh.close();
    })();
    return this.#closing;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      // Where a batch starts must be known to take it back if it fails: appends fail until it is.
      const unmeasured = this.#sizeUnknown ? await this.#measure().then(() => undefined, (err: unknown) => err) : undefined;
      const lines = this.#pending;
      const waiters = this.#waiters;
      const bytes = this.#pendingBytes;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#waiters = [];
      if (unmeasured !== undefined) {
        this.#length -= bytes;
        const error = storageIoError(this.path, unmeasured);
        for (const w of waiters) w.reject(error);
        continue;
      }
      this.#writing = waiters;
      const newline = this.#needsNewline;
      const buf = encodeLines(lines, bytes, newline);
      const start = this.#written;
      try {
        this.#batches++;
        // With O_DSYNC the write returns once its data is durable: one trip to the thread pool, not two.
        await writeAll(this.#fh, buf);
        if (this.#durable && !this.#synced) await this.#fh.datasync();
        if (this.#created) {
          // A new file's directory entry must be durable too, or a crash can lose the whole file.
          if (this.#durable) await fsyncDir(dirname(this.path));
          this.#created = false;
        }
        // Only now: a sync that fails takes the batch back, and `settledLength` must never pass it.
        this.#written = start + buf.length;
        this.#needsNewline = false;
        for (const w of waiters) w.resolve();
      } catch (err) {
        await this.#takeBack(start, newline);
        const error = storageIoError(this.path, err);
        for (const w of waiters) w.reject(error);
      } finally {
        this.#writing = undefined;
      }
    }
    this.#running = undefined;
  }

  /**
   * Takes a failed batch back out of the file. All or part of it may have
   * reached the disk (a short write before ENOSPC, a write that landed and
   * then reported an error, a failed sync), and its appends are rejected, so
   * none of it may be read back after a restart. If the file cannot be cut
   * back, the next batch starts on a fresh line (a torn line stays a line of
   * its own) and the lengths are recounted from what is really on disk.
   */
  async #takeBack(start: number, newline: boolean): Promise<void> {
    try {
      await this.#fh.truncate(start);
      if (this.#durable) await this.#fh.datasync();
      this.#written = start;
      this.#needsNewline = newline;
    } catch {
      this.#needsNewline = true;
      // Never a guess: a size too small would make a later take-back cut acknowledged lines.
      await this.#measure().catch(() => {
        this.#written = start;
        this.#sizeUnknown = true;
      });
    }
    this.#length = this.#written + (this.#needsNewline ? 1 : 0) + this.#pendingBytes;
  }

  /** Reads the file's real size into `#written`. */
  async #measure(): Promise<void> {
    const { size } = await this.#fh.stat();
    this.#written = size;
    this.#sizeUnknown = false;
    this.#length = size + (this.#needsNewline ? 1 : 0) + this.#pendingBytes;
  }
}

/**
 * Whether durable files are opened with `O_DSYNC`, so each write is durable
 * when it returns, as a write followed by `fdatasync` is: on Linux only. On
 * macOS `fdatasync` (libuv's `F_FULLFSYNC`) also flushes the drive's cache and
 * `O_DSYNC` does not; Windows has no such flag.
 */
const SYNCED_WRITES = process.platform === 'linux' && typeof constants.O_DSYNC === 'number' && constants.O_DSYNC !== 0;

/** Appending, readable (to find a torn last line), synchronised data writes. */
const SYNCED_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | (constants.O_DSYNC ?? 0);

/**
 * The lines as UTF-8, each followed by a newline (after a leading one for a
 * torn last line), encoded straight into one buffer. Joining them into one
 * string first would put a batch of a few thousand lines in V8's large-object
 * space, which only a full collection frees: under load that held tens of
 * megabytes of dead batches.
 */
function encodeLines(lines: readonly string[], bytes: number, leadingNewline: boolean): Buffer {
  const buf = Buffer.allocUnsafe(bytes + (leadingNewline ? 1 : 0));
  let at = 0;
  if (leadingNewline) buf[at++] = 0x0a;
  for (const line of lines) {
    at += buf.write(line, at);
    buf[at++] = 0x0a;
  }
  return buf;
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}
