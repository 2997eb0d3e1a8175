import { appendFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { IMClientError } from '../../src/errors.js';
import { LineCursor } from '../../src/fs/LineCursor.js';
import { tempDir } from '../helpers/tmp.js';

/** Takes up to `n` lines from `from`: their texts and ends, and where the next read carries on. */
async function take(cursor: LineCursor, from: number, end: number, n: number) {
  const lines: string[] = [];
  const ends: number[] = [];
  const next = await cursor.read(from, end, (text, lineEnd) => {
    lines.push(text);
    ends.push(lineEnd);
    return lines.length < n;
  });
  return { lines, ends, next };
}

describe('LineCursor', () => {
  it('reads a long file a few lines at a time, each read carrying on where the last stopped', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    // Multi-byte characters at every offset, so some straddle the reads from disk.
    const texts = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ i, text: `é€😀 ${'x'.repeat(i % 97)}` }));
    const content = `${texts.join('\n')}\n`;
    await writeFile(file, content);
    const size = Buffer.byteLength(content);
    const cursor = new LineCursor(file);
    const seen: string[] = [];
    let at = 0;
    for (;;) {
      const { lines, ends, next } = await take(cursor, at, size, 37);
      if (lines.length === 0) break;
      seen.push(...lines);
      // The offset after each line is where the next begins in the file.
      expect(ends.at(-1)).toBe(next);
      expect(Buffer.byteLength(`${seen.join('\n')}\n`)).toBe(next);
      at = next;
    }
    expect(seen).toEqual(texts);
    expect(at).toBe(size);
    await cursor.close();
  });

  it('reads a line longer than its buffer whole, and skips empty lines', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const long = 'y'.repeat(300_000);
    await writeFile(file, `a\n\n${long}\n\nb\n`);
    const cursor = new LineCursor(file);
    const { lines, next } = await take(cursor, 0, 300_007, 10);
    expect(lines).toEqual(['a', long, 'b']);
    expect(next).toBe(300_007);
    await cursor.close();
  });

  it('goes back to its usual buffer once a long line is behind it', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const long = 'y'.repeat(1_000_000);
    // More short lines than the grown buffer holds, so it is filled again after the long line.
    const short = Array.from({ length: 200_000 }, (_, i) => `line ${i}`);
    const content = `${long}\n${short.join('\n')}\n`;
    await writeFile(file, content);
    const size = Buffer.byteLength(content);
    const cursor = new LineCursor(file);
    const first = await take(cursor, 0, size, 1);
    expect(first.lines).toEqual([long]);
    expect(cursor.bufferBytes).toBeGreaterThan(1_000_000);
    // A drain carries on through short lines: the megabyte is not kept for the rest of it.
    const rest = await take(cursor, first.next, size, 300_000);
    expect(rest.lines).toEqual(short);
    expect(cursor.bufferBytes).toBeLessThanOrEqual(64 * 1024);
    await cursor.close();
  });

  it('keeps its larger buffer through a file of long lines, instead of shrinking and growing it again', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const texts = Array.from({ length: 40 }, (_, i) => String(i % 10).repeat(100_000 + i));
    const content = `${texts.join('\n')}\n`;
    await writeFile(file, content);
    const cursor = new LineCursor(file);
    const allocate = vi.spyOn(Buffer, 'allocUnsafe');
    const seen: string[] = [];
    let at = 0;
    for (;;) {
      const { lines, next } = await take(cursor, at, Buffer.byteLength(content), 3);
      if (lines.length === 0) break;
      seen.push(...lines);
      at = next;
    }
    const buffers = allocate.mock.calls.length;
    allocate.mockRestore();
    expect(seen).toEqual(texts);
    // 64 KiB, then 128 and 256 to hold a line: not a new buffer per line.
    expect(buffers).toBeLessThanOrEqual(3);
    await cursor.close();
  });

  it('reads nothing past the bound it is given, so bytes that may be taken back are never kept', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    // "1" and "2" are settled; the rest is a write that will fail and be cut back.
    await writeFile(file, '1\n2\n{"torn":');
    const cursor = new LineCursor(file);
    expect(await take(cursor, 0, 4, 10)).toMatchObject({ lines: ['1', '2'], next: 4 });
    await truncate(file, 4);
    await appendFile(file, '3\n');
    expect(await take(cursor, 4, 6, 10)).toMatchObject({ lines: ['3'], next: 6 });
    await cursor.close();
  });

  it('takes the bound for the end of a line: a last line cut off before its newline is read, and the newline written later is skipped', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    // A crash cut the last line off before its newline; the next append writes the newline first.
    await writeFile(file, '1\n2');
    const cursor = new LineCursor(file);
    expect(await take(cursor, 0, 3, 10)).toMatchObject({ lines: ['1', '2'], ends: [2, 3], next: 3 });
    await appendFile(file, '\n3\n');
    expect(await take(cursor, 3, 6, 10)).toMatchObject({ lines: ['3'], next: 6 });
    // Stopping right at such a line leaves it for the next read.
    const again = new LineCursor(file);
    expect(await take(again, 0, 3, 1)).toMatchObject({ lines: ['1'], next: 2 });
    expect(await take(again, 2, 3, 1)).toMatchObject({ lines: ['2'], next: 3 });
    await again.close();
    await cursor.close();
  });

  it('starts again from wherever it is asked to', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    await writeFile(file, 'aa\nbb\ncc\n');
    const cursor = new LineCursor(file);
    expect((await take(cursor, 0, 9, 1)).lines).toEqual(['aa']);
    expect((await take(cursor, 6, 9, 1)).lines).toEqual(['cc']);
    expect((await take(cursor, 0, 9, 3)).lines).toEqual(['aa', 'bb', 'cc']);
    await cursor.close();
  });

  it('fails with a storage error for a file it cannot open, and works once the file is there', async () => {
    const file = join(await tempDir(), 'missing.jsonl');
    const cursor = new LineCursor(file);
    const err = await cursor.read(0, 10, () => true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IMClientError);
    expect((err as IMClientError).code).toBe('STORAGE_IO');
    await writeFile(file, 'a\n');
    expect((await take(cursor, 0, 2, 5)).lines).toEqual(['a']);
    await cursor.close();
  });

  it('ends a read under way when closed, and refuses reads after', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    await writeFile(file, `${Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join('\n')}\n`);
    const cursor = new LineCursor(file);
    let visited = 0;
    const reading = cursor.read(0, 1e9, () => {
      visited++;
      return true;
    });
    await cursor.close();
    await reading;
    // Closed before its first read from the disk finished: nothing was visited.
    expect(visited).toBe(0);
    await expect(cursor.read(0, 10, () => true)).rejects.toThrow(/closed/);
  });
});
