import { open } from 'node:fs/promises';
import { storageIoError } from '../errors.js';

/** A line read by {@link readLinesBackward}. */
export interface BackwardLine {
  text: string;
  /** Byte offset of the line's first byte. */
  offset: number;
}

/** Options of {@link readLinesBackward}. */
export interface ReadBackwardOptions {
  /** Byte offset to read back from (exclusive); defaults to the end of the file. */
  end?: number | undefined;
  /** Bytes read per step. @default 65536 */
  chunkSize?: number | undefined;
}

/**
 * Yields a file's non-empty lines from last to first, reading fixed-size
 * chunks from the end, so the newest lines of a huge append-only log cost the
 * same as those of a small one. A missing file yields nothing.
 *
 * @example
 * ```ts
 * for await (const { text } of readLinesBackward(file)) {
 *   if (collected.push(JSON.parse(text)) === 50) break; // closes the file
 * }
 * ```
 */
export async function* readLinesBackward(file: string, options: ReadBackwardOptions = {}): AsyncGenerator<BackwardLine> {
  const chunkSize = options.chunkSize ?? 64 * 1024;
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw storageIoError(file, err);
  }
  try {
    const size = (await fh.stat()).size;
    let pos = Math.min(options.end ?? size, size);
    // Bytes after the last newline seen so far, which belong to a line whose start is further back.
    let carry = Buffer.alloc(0);
    while (pos > 0) {
      const len = Math.min(chunkSize, pos);
      pos -= len;
      const chunk = Buffer.alloc(len);
      let read = 0;
      while (read < len) {
        const { bytesRead } = await fh.read(chunk, read, len - read, pos + read);
        if (bytesRead === 0) throw new Error(`${file} shrank while being read`);
        read += bytesRead;
      }
      const buf = carry.length ? Buffer.concat([chunk, carry]) : chunk;
      let stop = buf.length;
      let nl = buf.lastIndexOf(0x0a, stop - 1);
      while (nl !== -1) {
        if (stop - nl > 1) yield { text: buf.toString('utf8', nl + 1, stop), offset: pos + nl + 1 };
        stop = nl;
        nl = stop > 0 ? buf.lastIndexOf(0x0a, stop - 1) : -1;
      }
      carry = buf.subarray(0, stop);
    }
    if (carry.length > 0) yield { text: carry.toString('utf8'), offset: 0 };
  } catch (err) {
    throw storageIoError(file, err);
  } finally {
    await fh.close();
  }
}
