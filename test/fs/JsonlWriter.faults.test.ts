import { readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonlWriter } from '../../src/fs/JsonlWriter.js';
import { failWritesOf, fileHandlePrototype, ioError } from '../helpers/diskFaults.js';
import { openFilesUnder } from '../helpers/openFiles.js';
import { tempDir } from '../helpers/tmp.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('JsonlWriter under disk faults', () => {
  it('takes a short write before ENOSPC back out of the file: the rejected lines never read back', async () => {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    const log = await JsonlWriter.open(path);
    await log.append('{"n":1}');
    await failWritesOf('"n":2', (len) => Math.floor(len / 2));
    await expect(log.append(['{"n":2}', '{"n":3}'])).rejects.toMatchObject({ code: 'STORAGE_IO', message: expect.stringContaining('ENOSPC') });
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n');
    vi.restoreAllMocks();
    await log.append('{"n":4}');
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":4}\n');
    expect(log.length).toBe(Buffer.byteLength('{"n":1}\n{"n":4}\n'));
    await log.close();
  });

  it('takes back a batch that landed whole and then reported an error', async () => {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    const log = await JsonlWriter.open(path);
    await log.append('{"n":1}');
    await failWritesOf('"n":2', (len) => len, 'EIO');
    await expect(log.append('{"n":2}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n');
    await log.append('{"n":3}');
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":3}\n');
    await log.close();
  });

  it('keeps a torn last line apart from the next record after a failed batch is taken back', async () => {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    await writeFile(path, '{"n":1}\n{"n":2,"te');
    const log = await JsonlWriter.open(path);
    await failWritesOf('"n":3', (len) => len, 'EIO');
    await expect(log.append('{"n":3}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":2,"te');
    vi.restoreAllMocks();
    await log.append('{"n":4}');
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":2,"te\n{"n":4}\n');
    await log.close();
  });

  it('gives offsets that lines appended behind a failing batch land at or after (settledLength)', async () => {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    const log = await JsonlWriter.open(path);
    await log.append('{"n":1}');
    let release!: () => void;
    await failWritesOf('"n":2', (len) => len, 'EIO', new Promise<void>((r) => (release = r)));
    const failing = log.append('{"n":2,"pad":"xxxxxxxxxxxxxxxx"}');
    await new Promise((r) => setTimeout(r, 10));
    // Appended while the batch before it is being written: `length` counts that batch in.
    const expected = log.length;
    const floor = log.settledLength;
    const behind = log.append('{"n":3}');
    release();
    await expect(failing).rejects.toMatchObject({ code: 'STORAGE_IO' });
    await behind;
    const text = await readFile(path, 'utf8');
    expect(text).toBe('{"n":1}\n{"n":3}\n');
    const at = text.indexOf('{"n":3}');
    expect(at).toBeGreaterThanOrEqual(floor);
    expect(at).toBeLessThan(expected);
    expect(log.settledLength).toBe(Buffer.byteLength(text));
    await log.close();
  });

  it('starts on a fresh line and recounts from the disk when the file cannot be cut back', async () => {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    const log = await JsonlWriter.open(path);
    await log.append('{"n":1}');
    await failWritesOf('"n":2', () => 5);
    const proto = await fileHandlePrototype();
    vi.spyOn(proto, 'truncate').mockRejectedValue(ioError('EIO'));
    await expect(log.append('{"n":2}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await log.append('{"n":3}');
    const text = await readFile(path, 'utf8');
    // The torn part of the rejected batch stays a line of its own, which readers skip.
    expect(text).toBe('{"n":1}\n{"n":\n{"n":3}\n');
    expect(log.length).toBe(Buffer.byteLength(text));
    await log.close();
  });

  it('never moves settledLength past a batch until its syncs succeed: one whose directory sync fails is taken back', async () => {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    // A new file: its first batch also syncs the directory.
    const log = await JsonlWriter.open(path);
    const proto = await fileHandlePrototype();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    vi.spyOn(proto, 'sync').mockImplementationOnce(async () => {
      await gate;
      throw ioError('EIO');
    });
    const first = log.append('{"n":1,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}');
    await new Promise((r) => setTimeout(r, 20));
    // Its write has landed and its sync is pending: a line appended now may land where it began.
    const floor = log.settledLength;
    const second = log.append('{"n":2}');
    release();
    await expect(first).rejects.toMatchObject({ code: 'STORAGE_IO' });
    await second;
    const text = await readFile(path, 'utf8');
    expect(text).toBe('{"n":2}\n');
    expect(text.indexOf('{"n":2}')).toBeGreaterThanOrEqual(floor);
    await log.close();
  });

  /**
   * A log holding `{"n":1}` whose next batch (the line `{"n":2...`) lands and
   * fails, and can then be neither cut back nor measured (`stat` failing once,
   * or until restored).
   */
  async function unmeasurable(statFails: 'once' | 'always') {
    const path = join(await tempDir('jw-'), 'log.jsonl');
    const log = await JsonlWriter.open(path);
    await log.append('{"n":1}');
    const proto = await fileHandlePrototype();
    await failWritesOf('"n":2', (len) => len, 'EIO');
    vi.spyOn(proto, 'truncate').mockRejectedValueOnce(ioError('EIO'));
    const stat = vi.spyOn(proto, 'stat');
    if (statFails === 'once') stat.mockRejectedValueOnce(ioError('EIO'));
    else stat.mockRejectedValue(ioError('EIO'));
    return { path, log };
  }

  it('measures the file again before writing when a failed batch could be neither cut back nor measured', async () => {
    const { path, log } = await unmeasurable('once');
    await expect(log.append('{"n":2,"pad":"yyyyyyyyyy"}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await log.append('{"n":3,"acknowledged":true}');
    // A later failure is taken back to where that batch really began, not past an acknowledged line.
    await failWritesOf('"n":4', (len) => len, 'EIO');
    await expect(log.append('{"n":4}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    const text = await readFile(path, 'utf8');
    expect(text).toBe('{"n":1}\n{"n":2,"pad":"yyyyyyyyyy"}\n\n{"n":3,"acknowledged":true}\n');
    expect(log.length).toBe(Buffer.byteLength(text));
    await log.close();
  });

  it('refuses appends while the file cannot be measured, rather than write where it could not take them back', async () => {
    const { path, log } = await unmeasurable('always');
    await expect(log.append('{"n":2}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    await expect(log.append('{"n":3}')).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await log.append('{"n":4}');
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":2}\n\n{"n":4}\n');
    await log.close();
  });

  it.runIf(process.platform === 'linux')('settles a second close only once the file is closed', async () => {
    const dir = await tempDir('jw-');
    const log = await JsonlWriter.open(join(dir, 'log.jsonl'));
    // The last batch takes a while to be written: the first close waits for it.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const proto = await fileHandlePrototype();
    const write = proto.write as unknown as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      await gate;
      return write.apply(this, args);
    } as typeof proto.write);
    const writing = log.append('{"n":1}');
    const first = log.close();
    const second = log.close().then(() => openFilesUnder(dir));
    setTimeout(release, 20);
    expect(await second).toBe(0);
    await Promise.all([writing, first]);
  });

  it('lets the first close report its error, and a second close resolve', async () => {
    // A file handle's close is its own (not its prototype's): caught as the writer opens the file.
    const proto = await fileHandlePrototype();
    const stat = proto.stat as unknown as (this: FileHandle, ...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, 'stat').mockImplementationOnce(async function (this: FileHandle, ...args: unknown[]) {
      const close = this.close.bind(this);
      // The file is closed, and the close reports an error (as close(2) may after a failed writeback).
      Object.assign(this, {
        close: async () => {
          await close();
          throw ioError('EIO');
        },
      });
      return stat.apply(this, args);
    } as typeof proto.stat);
    const log = await JsonlWriter.open(join(await tempDir('jw-'), 'log.jsonl'));
    vi.restoreAllMocks();
    await expect(log.close()).rejects.toThrow('EIO');
    await expect(log.close()).resolves.toBeUndefined();
  });
});
