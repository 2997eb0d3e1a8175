import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { LoggedJsonFile } from '../../src/fs/LoggedJsonFile.js';
import { failNthSync, failWritesOf, fileHandlePrototype, ioError } from '../helpers/diskFaults.js';
import { openFilesUnder } from '../helpers/openFiles.js';
import { tempDir } from '../helpers/tmp.js';

const Doc = z.object({ n: z.int() });

async function files() {
  const dir = await tempDir('logged-faults-');
  return { json: join(dir, 'doc.json'), log: join(dir, 'doc.log.jsonl') };
}

/** Writes `value` with every disk write of its line failing (EIO), and expects the write to report it. */
async function writeFailing(doc: LoggedJsonFile<typeof Doc>, value: { n: number }) {
  const spy = await failWritesOf(JSON.stringify(value).slice(0, -1), (length) => length, 'EIO');
  try {
    await expect(doc.write(value)).rejects.toMatchObject({ code: 'STORAGE_IO' });
  } finally {
    spy.mockRestore();
  }
}

/** Fails only the first write of a buffer containing `marker`. */
async function failFirstWriteOf(marker: string) {
  const proto = await fileHandlePrototype();
  const real = proto.write as unknown as (...a: unknown[]) => Promise<unknown>;
  let done = false;
  return vi.spyOn(proto, 'write').mockImplementation(async function (this: unknown, ...args: unknown[]) {
    const [buf] = args as [Buffer];
    if (!done && Buffer.isBuffer(buf) && buf.includes(marker)) {
      done = true;
      throw ioError('EIO');
    }
    return real.apply(this, args);
  } as never);
}

/** Holds writes of buffers containing `hold` until `gate`; fails every write containing `fail`. */
async function faults(hold: string, gate: Promise<void>, fail: string) {
  const proto = await fileHandlePrototype();
  const real = proto.write as unknown as (...a: unknown[]) => Promise<unknown>;
  return vi.spyOn(proto, 'write').mockImplementation(async function (this: unknown, ...args: unknown[]) {
    const [buf] = args as [Buffer];
    if (Buffer.isBuffer(buf) && buf.includes(hold)) await gate;
    if (Buffer.isBuffer(buf) && buf.includes(fail)) throw ioError('EIO');
    return real.apply(this, args);
  } as never);
}

/**
 * Writes that fail, overlap, or meet a fold or a close: the current value and
 * what is folded into the JSON file are always the last durable value (or a
 * later write still on its way), never one the caller was told failed.
 */
describe('LoggedJsonFile under failed and overlapping writes', () => {
  it('a write made while a compaction flushes the log, that then fails, is not folded into the JSON file (deterministic)', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc, { compactEvery: 1 });
    let release: () => void = () => {};
    const spy = await faults('"n":10', new Promise<void>((r) => (release = r)), '"n":2}');
    try {
      const p1 = doc.write({ n: 1 }); // batch A
      const p10 = doc.write({ n: 10 }); // batch B, held
      await p1; // a compaction starts; it waits for batch B in flush()
      const p2 = doc.write({ n: 2 }); // made during the compaction: waits for it, then its append fails
      release();
      await p10;
      await expect(p2).rejects.toMatchObject({ code: 'STORAGE_IO' });
    } finally {
      spy.mockRestore();
    }
    expect(await doc.read()).toEqual({ n: 10 });
    await doc.close();
    // The caller was told {n:2} was not written; {n:10} is the last durable value.
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 10 });
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 10 });
  });

  it('a write that fails leaves the last durable value, in memory and in the JSON file it folds into', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    await writeFailing(doc, { n: 2 });
    expect(await doc.read()).toEqual({ n: 1 });
    // A later write that succeeds is the value again.
    await doc.write({ n: 3 });
    expect(await doc.read()).toEqual({ n: 3 });
    await writeFailing(doc, { n: 4 });
    await doc.close();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 3 });
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 3 });
  });

  it('a write made while a compaction is under way, that then fails, is not folded into the JSON file', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc, { compactEvery: 1 });
    // Succeeds, and starts a compaction in the background (lines >= compactEvery).
    await doc.write({ n: 1 });
    // Made while the compaction runs: it waits for it, then its append fails.
    await writeFailing(doc, { n: 2 });
    expect(await doc.read()).toEqual({ n: 1 });
    await doc.close();
    // The caller was told {n:2} was not written.
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 1 });
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 1 });
  });

  it('overlapping writes: fail then succeed, succeed then fail, fail then fail', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    // fail (batch A) then succeed (batch B)
    let spy = await failFirstWriteOf('"n":2');
    let a = doc.write({ n: 2 });
    let b = doc.write({ n: 3 });
    await expect(a).rejects.toBeTruthy();
    await b;
    spy.mockRestore();
    expect(await doc.read()).toEqual({ n: 3 });
    // succeed (A) then fail (B)
    spy = await failFirstWriteOf('"n":5');
    a = doc.write({ n: 4 });
    b = doc.write({ n: 5 });
    await a;
    await expect(b).rejects.toBeTruthy();
    spy.mockRestore();
    expect(await doc.read()).toEqual({ n: 4 });
    // fail (A) then fail (B, group of two)
    spy = await failWritesOf('"n":', (l) => l, 'EIO');
    a = doc.write({ n: 6 });
    b = doc.write({ n: 7 });
    const c = doc.write({ n: 8 });
    await expect(a).rejects.toBeTruthy();
    await expect(b).rejects.toBeTruthy();
    await expect(c).rejects.toBeTruthy();
    spy.mockRestore();
    expect(await doc.read()).toEqual({ n: 4 });
    await doc.close();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 4 });
  });

  it('the same value object written again: a failure of the first write does not undo the later successful ones', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    const x = { n: 5 };
    const spy = await failFirstWriteOf('"n":5');
    const a = doc.write(x); // batch A: fails
    const b = doc.write({ n: 6 }); // batch B
    const c = doc.write(x); // batch B
    await expect(a).rejects.toBeTruthy();
    await b;
    await c;
    spy.mockRestore();
    // The last write (x) succeeded.
    expect(await doc.read()).toEqual({ n: 5 });
    await doc.close();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 5 });
  });

  it('close while a write is in flight and then fails: the JSON file keeps the last durable value', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    let release: () => void = () => {};
    const spy = await faults('"n":2', new Promise<void>((r) => (release = r)), '"n":2}');
    const p2 = doc.write({ n: 2 });
    await new Promise((r) => setTimeout(r, 20));
    const closing = doc.close();
    release();
    await expect(p2).rejects.toBeTruthy();
    await closing;
    spy.mockRestore();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 1 });
  });

  it('close while a write waits for a compaction: the write is refused and not folded', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc, { compactEvery: 1 });
    let release: () => void = () => {};
    const spy = await faults('"n":10', new Promise<void>((r) => (release = r)), 'never-matches');
    const p1 = doc.write({ n: 1 });
    const p10 = doc.write({ n: 10 });
    await p1; // compaction waits for {n:10}
    const p2 = doc.write({ n: 2 }); // waits for the compaction
    const closing = doc.close();
    release();
    await p10;
    await expect(p2).rejects.toMatchObject({ code: 'CLOSED' });
    await closing;
    spy.mockRestore();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 10 });
  });

  it('a failed write that cannot be cut back out of the log, then a clean close: reopening does not return it', async () => {
    const { json, log } = await files();
    let doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    await doc.close(); // folded: {n:1} in the JSON file, no log
    doc = await LoggedJsonFile.open(json, log, Doc);
    const proto = await fileHandlePrototype();
    const spyW = await failWritesOf('"n":2', (l) => l, 'EIO'); // the line lands, then the write reports an error
    const spyT = vi.spyOn(proto, 'truncate').mockRejectedValue(ioError('EIO')); // and cannot be taken back
    try {
      await expect(doc.write({ n: 2 })).rejects.toMatchObject({ code: 'STORAGE_IO' });
    } finally {
      spyW.mockRestore();
      spyT.mockRestore();
    }
    expect(await doc.read()).toEqual({ n: 1 });
    await doc.close();
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 1 });
  });

  it('close while a write is appending and a later one waits its turn: the later is refused, the earlier stays the value', async () => {
    const { json, log } = await files();
    const first = await LoggedJsonFile.open(json, log, Doc);
    await first.write({ n: 0 });
    await first.close();
    // The log was folded: the next write opens a new one.
    const doc = await LoggedJsonFile.open(json, log, Doc);
    const p1 = doc.write({ n: 1 });
    await Promise.resolve();
    await Promise.resolve();
    const p2 = doc.write({ n: 2 });
    const closing = doc.close();
    await expect(p2).rejects.toMatchObject({ code: 'CLOSED' });
    await p1;
    await closing;
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 1 });
    expect(await doc.read()).toEqual({ n: 1 });
  });

  it('a close whose fold fails reports it, closes the log, and the next open folds it', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    await doc.write({ n: 2 });
    // The fold writes the JSON file through a temp file: its sync fails.
    await failNthSync(1, 'EIO');
    try {
      await expect(doc.close()).rejects.toMatchObject({ code: 'STORAGE_IO' });
    } finally {
      vi.restoreAllMocks();
    }
    expect(await openFilesUnder(dirname(log))).toBe(0);
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 2 });
    const again = await LoggedJsonFile.open(json, log, Doc);
    expect(await again.read()).toEqual({ n: 2 });
    await again.close();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 2 });
  });
});
