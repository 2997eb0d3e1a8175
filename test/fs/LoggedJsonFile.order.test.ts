import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { failWritesOf } from '../helpers/diskFaults.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * A fold ends with a directory fsync; `hook.after` runs right after the
 * `skip`+1-th one, to make a write at every microtask around the end of a fold.
 */
const hook: { after?: () => void; skip: number } = { skip: 0 };
vi.mock('../../src/fs/fsyncDir.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/fs/fsyncDir.js')>();
  return {
    ...real,
    fsyncDir: async (dir: string) => {
      await real.fsyncDir(dir);
      if (hook.after && hook.skip-- > 0) return;
      const after = hook.after;
      hook.after = undefined;
      after?.();
    },
  };
});
const { LoggedJsonFile } = await import('../../src/fs/LoggedJsonFile.js');

const Doc = z.object({ n: z.int() });

describe('LoggedJsonFile: a write made as a compaction ends', () => {
  for (let k = 0; k < 8; k++) {
    it(`keeps call order when the later write comes ${k} microtasks after the compaction's last fsync`, async () => {
      const dir = await tempDir('logged-order-');
      const json = join(dir, 'doc.json');
      const log = join(dir, 'doc.log.jsonl');
      const doc = await LoggedJsonFile.open(json, log, Doc, { compactEvery: 1 });
      let pb: Promise<void> | undefined;
      await doc.write({ n: 1 }); // starts a compaction
      // a: made while the compaction runs (waits for it)
      hook.skip = 1;
      hook.after = () => {
        let p: Promise<void> = Promise.resolve();
        for (let i = 0; i < k; i++) p = p.then(() => {});
        void p.then(() => {
          pb = doc.write({ n: 3 }); // b: made after a, as the compaction ends
        });
      };
      const pa = doc.write({ n: 2 });
      await pa;
      await pb;
      const lines = (await readFile(log, 'utf8').catch(() => '')).trim().split('\n');
      expect(await doc.read()).toEqual({ n: 3 });
      // What a crash now would read back: the last line of the log.
      expect(lines.at(-1)).toBe('{"n":3}');
      await doc.close();
    });
  }
  it('then a failed write goes back to the value written last (k=1)', async () => {
    const dir = await tempDir('logged-order-');
    const json = join(dir, 'doc.json');
    const log = join(dir, 'doc.log.jsonl');
    const doc = await LoggedJsonFile.open(json, log, Doc, { compactEvery: 1 });
    let pb: Promise<void> | undefined;
    await doc.write({ n: 1 }); // third line: starts a compaction
    hook.skip = 1;
    hook.after = () => void Promise.resolve().then(() => {}).then(() => { pb = doc.write({ n: 3 }); });
    const pa = doc.write({ n: 2 });
    await pa;
    await pb;
    expect(await doc.read()).toEqual({ n: 3 });
    expect((await readFile(log, 'utf8')).trim().split('\n').at(-1)).toBe('{"n":3}');
    const spy = await failWritesOf('"n":4', (l) => l, 'EIO');
    await expect(doc.write({ n: 4 })).rejects.toBeTruthy();
    spy.mockRestore();
    // {n:3} was written (resolved) after {n:2} was called; {n:4} failed.
    expect(await doc.read()).toEqual({ n: 3 });
  });
});
