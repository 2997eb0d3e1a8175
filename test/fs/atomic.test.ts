import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { StorageCorruptError } from '../../src/errors.js';
import { atomicWriteFile, removeStaleTempFiles } from '../../src/fs/atomicWriteFile.js';
import { JsonFile } from '../../src/fs/JsonFile.js';
import { runFixture } from '../helpers/child.js';
import { sleep } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const Doc = z.object({ n: z.int(), pad: z.string() });

describe('JsonFile', () => {
  it('writes and reads back a validated document; a missing file reads as undefined', async () => {
    const file = new JsonFile(join(await tempDir(), 'doc.json'), Doc);
    expect(await file.read()).toBeUndefined();
    await file.write({ n: 1, pad: '' });
    expect(await file.read()).toEqual({ n: 1, pad: '' });
  });

  it('coalesces writes made while one is in flight: the newest value wins and everyone resolves', async () => {
    const dir = await tempDir();
    const file = new JsonFile(join(dir, 'doc.json'), Doc);
    await Promise.all(Array.from({ length: 50 }, (_, n) => file.write({ n, pad: '' })));
    expect((await file.read())?.n).toBe(49);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('throws StorageCorruptError for invalid content and leaves the file untouched', async () => {
    const path = join(await tempDir(), 'doc.json');
    await writeFile(path, '{"n": "not a number"');
    const err = await new JsonFile(path, Doc).read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruptError);
    expect((err as StorageCorruptError).file).toBe(path);
    await writeFile(path, '{"n": "x", "pad": ""}');
    await expect(new JsonFile(path, Doc).read()).rejects.toThrow(/n: /);
    expect(await readFile(path, 'utf8')).toBe('{"n": "x", "pad": ""}');
  });

  it('replaces atomically: a writer SIGKILLed at any instant leaves the old or the new document, never a mix', async () => {
    const dir = await tempDir();
    const path = join(dir, 'doc.json');
    for (let round = 0; round < 5; round++) {
      const child = runFixture('rewriteJson.ts', [path]);
      await child.waitFor(/writing/);
      await sleep(20 + round * 15);
      child.process.kill('SIGKILL');
      await child.exited;
      const doc = await new JsonFile(path, Doc).read();
      expect(doc?.pad.length).toBe(4096 + (doc!.n % 100));
    }
    // The temp files of killed writers are cleaned up.
    await removeStaleTempFiles(dir);
    expect(await readdir(dir)).toEqual(['doc.json']);
  });
});

describe('atomicWriteFile', () => {
  it('writes a document made a part at a time, and leaves the old one whole (and no temp file) when a part cannot be made', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await atomicWriteFile(file, ['{"a":', '1', '}\n']);
    expect(await readFile(file, 'utf8')).toBe('{"a":1}\n');
    function* broken(): Generator<string> {
      yield '{"a":';
      yield JSON.stringify({ n: 1n });
    }
    // The caller's own error, as it is: not reported as a disk error.
    await expect(atomicWriteFile(file, broken())).rejects.toBeInstanceOf(TypeError);
    expect(await readFile(file, 'utf8')).toBe('{"a":1}\n');
    expect(await readdir(dir)).toEqual(['doc.json']);
  });
});
