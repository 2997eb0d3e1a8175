import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JsonlWriter } from '../../src/fs/JsonlWriter.js';
import { readJsonl, readLines } from '../../src/fs/readJsonl.js';
import { readLinesBackward } from '../../src/fs/readLinesBackward.js';
import type { StorageWarning } from '../../src/fs/StorageWarning.js';
import { formatStorageWarning } from '../../src/fs/StorageWarning.js';
import { runFixture } from '../helpers/child.js';
import { tempDir } from '../helpers/tmp.js';

const Rec = z.object({ n: z.int() });

async function readAll(file: string): Promise<{ values: number[]; warnings: StorageWarning[] }> {
  const warnings: StorageWarning[] = [];
  const values: number[] = [];
  for await (const r of readJsonl(file, Rec, { onWarning: (w) => warnings.push(w) })) values.push(r.value.n);
  return { values, warnings };
}

describe('JsonlWriter', () => {
  it('appends lines that read back in order', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const w = await JsonlWriter.open(file);
    await w.append(JSON.stringify({ n: 1 }));
    await w.append([JSON.stringify({ n: 2 }), JSON.stringify({ n: 3 })]);
    await w.close();
    expect(await readFile(file, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
  });

  it('group-commits concurrent appends: many appends, few write+sync batches', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const w = await JsonlWriter.open(file);
    await Promise.all(Array.from({ length: 2000 }, (_, n) => w.append(JSON.stringify({ n }))));
    expect(w.batches).toBeLessThan(20);
    await w.close();
    expect((await readAll(file)).values).toEqual(Array.from({ length: 2000 }, (_, n) => n));
  });

  it('tracks the byte offset where the next line starts', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const w = await JsonlWriter.open(file);
    const before = w.length;
    void w.append(JSON.stringify({ n: 'é'.length }));
    const offset = w.length;
    await w.append(JSON.stringify({ n: 2 }));
    await w.close();
    const text = await readFile(file);
    expect(before).toBe(0);
    expect(text.subarray(offset).toString()).toBe('{"n":2}\n');
  });

  it('writes lines of any size and script byte for byte, with each offset where its line starts', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const w = await JsonlWriter.open(file);
    // Short and long lines, multi-byte and astral characters, a lone surrogate (written as U+FFFD),
    // many in one batch: the pending buffer grows while a write is under way.
    const lines = [
      '你好，我需要你的帮助',
      'x'.repeat(200_000),
      '🙂'.repeat(30_000),
      'lone \ud800 surrogate',
      ...Array.from({ length: 3000 }, (_, i) => `${'é'.repeat(i % 50)}${i}`),
      '',
    ];
    const offsets: number[] = [];
    const appends = lines.map((line) => {
      offsets.push(w.length);
      return w.append(line);
    });
    // An empty append waits for what came before it, and resolves when nothing is pending.
    let before = 0;
    for (const a of appends) void a.then(() => before++);
    await w.append([]);
    expect(before).toBe(lines.length);
    await Promise.all(appends);
    await w.append([]);
    await w.close();
    const bytes = await readFile(file);
    expect(w.length).toBe(bytes.length);
    expect(bytes.toString()).toBe(lines.map((l) => `${l.replace('\ud800', '\ufffd')}\n`).join(''));
    for (const i of [0, 1, 2, 3, 1000, lines.length - 1]) expect(bytes.subarray(offsets[i]!).toString().split('\n')[0]).toBe(lines[i]!.replace('\ud800', '\ufffd'));
  });

  it('resolves an empty append with the batch being written when nothing else is pending', async () => {
    const w = await JsonlWriter.open(join(await tempDir(), 'log.jsonl'));
    let written = false;
    // The append starts a batch at once: it is being written, and nothing is pending.
    void w.append(JSON.stringify({ n: 1 })).then(() => (written = true));
    await w.append([]);
    expect(written).toBe(true);
    await w.close();
  });

  it('resolves an empty append once what came before is durable, while appends keep coming', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const w = await JsonlWriter.open(file);
    let stop = false;
    let n = 0;
    let settled = 0;
    const appends: Array<Promise<void>> = [];
    // A steady producer: the writer never goes idle while it runs.
    const produce = () => {
      if (stop) return;
      const a = w.append(JSON.stringify({ n: n++ }));
      void a.then(() => settled++);
      appends.push(a);
      setImmediate(produce);
    };
    produce();
    await new Promise((r) => setTimeout(r, 20));
    const upTo = appends.length;
    const durable = await Promise.race([w.append([]).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 2000))]);
    stop = true;
    expect(durable).toBe(true);
    // Everything appended before the empty append had settled when it did.
    expect(settled).toBeGreaterThanOrEqual(upTo);
    await Promise.all(appends);
    await w.close();
  });

  it('starts on a fresh line after a torn last line, so the torn bytes never glue onto a new record', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    await writeFile(file, '{"n":1}\n{"n":2}\n{"n":');
    const w = await JsonlWriter.open(file);
    await w.append(JSON.stringify({ n: 3 }));
    await w.close();
    const { values, warnings } = await readAll(file);
    expect(values).toEqual([1, 2, 3]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ file, line: 3 });
  });

  it('rejects appends after close with code CLOSED', async () => {
    const w = await JsonlWriter.open(join(await tempDir(), 'log.jsonl'));
    await w.close();
    await expect(w.append('{}')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('keeps every line it acknowledged when the process is SIGKILLed mid-append', async () => {
    const file = join(await tempDir(), 'log.jsonl');
    const child = runFixture('appendJsonl.ts', [file]);
    await child.waitFor(/durable (\d+)\n(.|\n)*durable (\d+)\n/);
    child.process.kill('SIGKILL');
    await child.exited;
    const durable = Math.max(...[...child.output().matchAll(/durable (\d+)/g)].map((m) => Number(m[1])));
    const { values } = await readAll(file);
    // Every acknowledged line is there, in order, with nothing duplicated.
    expect(values.length).toBeGreaterThanOrEqual(durable);
    expect(values).toEqual(Array.from({ length: values.length }, (_, n) => n));
  });
});

describe('readJsonl', () => {
  it('skips a torn last line with a warning naming file and line, keeping the lines before it', async () => {
    const file = join(await tempDir(), 'c.jsonl');
    await writeFile(file, '{"n":1}\n{"n":2}\n{"n":3, "tex');
    const { values, warnings } = await readAll(file);
    expect(values).toEqual([1, 2]);
    expect(warnings).toEqual([{ file, line: 3, offset: 16, reason: expect.stringMatching(/^torn last line/) }]);
    expect(formatStorageWarning(warnings[0]!)).toMatch(new RegExp(`^${file}:line 3: skipped: torn last line`));
  });

  it('skips a corrupt middle line and an invalid record, reading the valid lines around them', async () => {
    const file = join(await tempDir(), 'c.jsonl');
    await writeFile(file, '{"n":1}\nhand edited garbage\n{"n":"two"}\n\n{"n":4}\n');
    const { values, warnings } = await readAll(file);
    expect(values).toEqual([1, 4]);
    expect(warnings.map((w) => [w.line, w.reason.split(':')[0]])).toEqual([
      [2, 'not valid JSON'],
      [3, 'invalid record'],
    ]);
  });

  it('reads a missing file as empty', async () => {
    expect((await readAll(join(await tempDir(), 'missing.jsonl'))).values).toEqual([]);
  });

  it('reads lines longer than its read chunk, and from a byte offset', async () => {
    const file = join(await tempDir(), 'c.jsonl');
    const big = JSON.stringify({ n: 1, pad: 'p'.repeat(600_000) });
    await writeFile(file, `${big}\n{"n":2}\n`);
    const all: number[] = [];
    for await (const r of readJsonl(file, Rec)) all.push(r.value.n);
    expect(all).toEqual([1, 2]);
    const tail: number[] = [];
    for await (const r of readJsonl(file, Rec, { start: big.length + 1 })) tail.push(r.value.n);
    expect(tail).toEqual([2]);
  });
});

describe('readLines', () => {
  it('reads lines spanning many chunks byte for byte, split inside characters, with their numbers and offsets', async () => {
    const file = join(await tempDir(), 'l.jsonl');
    // A 3 MB line of 3-byte characters crosses twelve 256 KiB chunks, some boundaries inside a
    // character; short lines and empty ones sit between long ones; the last line is unterminated.
    const lines = ['a', '', 'é'.repeat(300_001), '€'.repeat(1_000_003), '', '', 'b😀'.repeat(70_000), 'tail €'.repeat(100_000)];
    const bytes = Buffer.from(lines.join('\n'));
    await writeFile(file, bytes);
    const expected: Array<{ text: string; line: number; offset: number; end: number; terminated: boolean }> = [];
    let offset = 0;
    lines.forEach((text, i) => {
      const length = Buffer.byteLength(text);
      const terminated = i < lines.length - 1;
      if (length > 0) expected.push({ text, line: i + 1, offset, end: offset + length + (terminated ? 1 : 0), terminated });
      offset += length + 1;
    });
    const read: typeof expected = [];
    for await (const batch of readLines(file)) for (const { text, line, offset, end, terminated } of batch) read.push({ text, line, offset, end, terminated });
    expect(read.map((r) => ({ ...r, text: r.text.length }))).toEqual(expected.map((r) => ({ ...r, text: r.text.length })));
    expect(read.every((r, i) => r.text === expected[i]!.text)).toBe(true);
    // From a line's start, the numbers count from there.
    const from = expected[3]!;
    const tail: typeof expected = [];
    for await (const batch of readLines(file, from.offset)) for (const { text, line, offset, end, terminated } of batch) tail.push({ text, line, offset, end, terminated });
    expect(tail.map((r) => [r.line, r.offset, r.end])).toEqual(expected.slice(3).map((r) => [r.line - from.line + 1, r.offset, r.end]));
    expect(tail[0]!.text === from.text).toBe(true);
  });
});

describe('readLinesBackward', () => {
  it('yields lines newest first across chunk boundaries, with their offsets', async () => {
    const file = join(await tempDir(), 'c.jsonl');
    const lines = Array.from({ length: 500 }, (_, n) => JSON.stringify({ n, s: '中文'.repeat(n % 7) }));
    await writeFile(file, `${lines.join('\n')}\n`);
    const got: Array<{ text: string; offset: number }> = [];
    for await (const l of readLinesBackward(file, { chunkSize: 97 })) got.push(l);
    expect(got.map((l) => l.text)).toEqual([...lines].reverse());
    const buf = await readFile(file);
    for (const l of got.slice(0, 20)) expect(buf.subarray(l.offset, l.offset + Buffer.byteLength(l.text)).toString()).toBe(l.text);
  });

  it('yields a torn last line first, so the caller can skip it', async () => {
    const file = join(await tempDir(), 'c.jsonl');
    await writeFile(file, '{"n":1}\n{"n":2}\n{"n"');
    const got: string[] = [];
    for await (const l of readLinesBackward(file)) got.push(l.text);
    expect(got).toEqual(['{"n"', '{"n":2}', '{"n":1}']);
  });

  it('stops reading when the consumer stops', async () => {
    const file = join(await tempDir(), 'c.jsonl');
    await writeFile(file, Array.from({ length: 100 }, (_, n) => `{"n":${n}}\n`).join(''));
    const got: string[] = [];
    for await (const l of readLinesBackward(file)) {
      got.push(l.text);
      if (got.length === 3) break;
    }
    expect(got).toEqual(['{"n":99}', '{"n":98}', '{"n":97}']);
  });
});
