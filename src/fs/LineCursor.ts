import { open, type FileHandle } from 'node:fs/promises';
import { storageIoError } from '../errors.js';

/** What a read from the disk asks for at least (grown to hold a longer line). */
const READ_BYTES = 64 * 1024;

/**
 * Reads the lines of a file that is only appended to, in order, from a byte
 * offset, and only as far as its caller takes them: the bytes it read past the
 * last line taken wait in its buffer for the next call that continues there.
 * For reading a long file back a little at a time (a queue being drained)
 * without opening the file, or decoding lines nobody takes, on every call.
 *
 * The file is held open until {@link close}. Each read is bounded by the
 * caller's `end`: the length up to which the file's bytes are settled (written
 * and never to be taken back, whatever is appended after), so what the cursor
 * buffers never changes under it, and which ends a line. The last line before
 * it may lack its newline (a crash cut it off, and whoever appends next writes
 * the newline first); it is visited all the same, and the newline, once written,
 * makes an empty line, skipped. One read at a time: calls must not overlap.
 */
export class LineCursor {
  readonly path: string;
  #handle: Promise<FileHandle> | undefined;
  #closed = false;
  #buf: Buffer | undefined;
  /** The bytes of the file from {@link #at} on, read and not yet taken, are `#buf[#start, #end)`. */
  #start = 0;
  #end = 0;
  #at = 0;
  /** The longest line taken since the last fill, in bytes. */
  #longest = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** Bytes of its read buffer (0 before the first read and once closed). */
  get bufferBytes(): number {
    return this.#buf?.length ?? 0;
  }

  /**
   * Visits the non-empty lines between byte `from` (the start of a line) and byte `end` (the
   * end of one), each with the offset just past its newline (`end` for a last line without
   * one), until `visit` returns false or none is left. Resolves with the offset after the last
   * line visited (`from` if none was).
   */
  async read(from: number, end: number, visit: (text: string, end: number) => boolean): Promise<number> {
    if (this.#closed) throw new Error(`LineCursor for ${this.path} is closed`);
    if (from !== this.#at) {
      // Somewhere else: what is buffered is not from there.
      this.#start = this.#end = 0;
      this.#at = from;
    }
    this.#buf ??= Buffer.allocUnsafe(READ_BYTES);
    for (;;) {
      const buf = this.#buf;
      let nl = buf.indexOf(0x0a, this.#start);
      while (nl !== -1 && nl < this.#end) {
        const start = this.#start;
        if (nl - start > this.#longest) this.#longest = nl - start;
        this.#start = nl + 1;
        this.#at += nl + 1 - start;
        if (nl > start && !visit(buf.toString('utf8', start, nl), this.#at)) return this.#at;
        nl = buf.indexOf(0x0a, this.#start);
      }
      if (!(await this.#fill(end))) break;
    }
    // Everything up to `end` is buffered: what is left of it is a last line without its newline.
    if (this.#end > this.#start && this.#at + this.#end - this.#start === end && !this.#closed) {
      const text = this.#buf!.toString('utf8', this.#start, this.#end);
      this.#start = this.#end = 0;
      this.#at = end;
      visit(text, end);
    }
    return this.#at;
  }

  /**
   * Reads more of the file after what is buffered, up to byte `end`, keeping the unfinished
   * line: false when there is nothing more to read (or once closed).
   */
  async #fill(end: number): Promise<boolean> {
    const from = this.#at + this.#end - this.#start;
    if (from >= end) return false;
    let buf = this.#buf!;
    const kept = this.#end - this.#start;
    if (kept * 2 > buf.length) {
      // An unfinished line fills most of the buffer: room for a longer one.
      const larger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(larger, 0, this.#start, this.#end);
      this.#buf = buf = larger;
    } else if (buf.length > READ_BYTES && kept * 2 <= READ_BYTES && this.#longest * 2 <= READ_BYTES) {
      // Long lines are behind (every line taken since the last fill was short): a cursor kept open
      // for the rest of a drain holds the usual size again. A file of long lines keeps the larger one.
      const usual = Buffer.allocUnsafe(READ_BYTES);
      buf.copy(usual, 0, this.#start, this.#end);
      this.#buf = buf = usual;
    } else if (this.#start > 0) {
      buf.copyWithin(0, this.#start, this.#end);
    }
    this.#start = 0;
    this.#end = kept;
    this.#longest = 0;
    let bytesRead: number;
    try {
      const handle = await (this.#handle ??= open(this.path, 'r'));
      if (this.#closed) return false;
      ({ bytesRead } = await handle.read(buf, kept, Math.min(buf.length - kept, end - from), from));
    } catch (err) {
      if (this.#closed) return false;
      // Opened again by the next read (the file may be back).
      const failed = this.#handle;
      this.#handle = undefined;
      void failed?.then((h) => h.close()).catch(() => {});
      throw storageIoError(this.path, err);
    }
    if (this.#closed) return false;
    // Bytes past this.#end are from an earlier fill: they never count as read now.
    this.#end = kept + bytesRead;
    return bytesRead > 0;
  }

  /** Closes the file, once any read under way has finished with it. Reads after this fail. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#buf = undefined;
    const handle = this.#handle;
    this.#handle = undefined;
    // A file only read from: nothing is lost if closing it fails, and a caller closing it has
    // its own files to close next.
    if (handle) await handle.then((h) => h.close()).catch(() => {});
  }
}
